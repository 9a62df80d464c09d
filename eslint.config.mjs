// ESLint's flat config: lints the web page's JavaScript (enclave/faces/web/static/js), as
// ruff lints the Python. `npm ci && npx eslint enclave/faces/web/static` runs it; .ci/run does.
//
// Rules beyond eslint's recommended set are the page's own rules made checkable:
// no HTML parsing of text (innerHTML and friends), no code from strings (the
// Content-Security-Policy forbids it anyway), and modern, strict JavaScript.

import js from "@eslint/js";
import globals from "globals";

const NO_HTML = "put text in with textContent or el() (dom.js): peer text is never parsed as HTML";

export default [
  js.configs.recommended,
  {
    files: ["enclave/faces/web/static/**/*.js"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: globals.browser,
    },
    linterOptions: {
      reportUnusedDisableDirectives: "error",
    },
    rules: {
      eqeqeq: "error",
      "no-var": "error",
      "prefer-const": "error",
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-shadow": "error",
      "no-use-before-define": ["error", { functions: false, classes: true, variables: true }],
      "no-restricted-properties": [
        "error",
        { property: "innerHTML", message: NO_HTML },
        { property: "outerHTML", message: NO_HTML },
        { property: "insertAdjacentHTML", message: NO_HTML },
        { property: "createContextualFragment", message: NO_HTML },
        { object: "document", property: "write", message: NO_HTML },
        { object: "document", property: "writeln", message: NO_HTML },
      ],
    },
  },
];
