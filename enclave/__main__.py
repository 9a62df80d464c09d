from enclave.faces.cli import main

raise SystemExit(main())
