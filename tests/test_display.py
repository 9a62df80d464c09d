"""How faces show what a peer controls (enclave/node/display.py): the creation-time window
and the characters that are shown as ⟨U+XXXX⟩ instead of being applied."""

import unicodedata

import pytest

from enclave.node.display import _HIDDEN, MAX_AGE_MS, MAX_AHEAD_MS, created_time, visible

NOW = 1_780_000_000_000  # some received time, ms


@pytest.mark.parametrize(
    ("created", "shown"),
    [
        (NOW, NOW),
        (NOW - 5 * 86_400_000, NOW - 5 * 86_400_000),  # waited five days in an outbox
        (NOW - MAX_AGE_MS, NOW - MAX_AGE_MS),
        (NOW - MAX_AGE_MS - 1, None),
        (NOW + 1, NOW),  # a clock a little ahead: never shown as after its arrival
        (NOW + MAX_AHEAD_MS, NOW),
        (NOW + MAX_AHEAD_MS + 1, None),
        (0, None),
        (2**63 - 1, None),  # what the store keeps of 2**64 - 1
        (2**64 - 1, None),
    ],
)
def test_creation_time_window(created, shown):
    assert created_time(created, NOW) == shown


def test_the_hidden_table_is_every_control_format_and_separator_character():
    """The regex's ranges match exactly the code points of categories Cc, Cf, Zl, Zp
    and Cs in Python's Unicode database, plus U+13439-1343F (Cf since Unicode 15)."""
    wanted = {"Cc", "Cf", "Zl", "Zp", "Cs"}
    newer = set(range(0x13439, 0x13440))
    for cp in range(0x110000):
        ch = chr(cp)
        expected = unicodedata.category(ch) in wanted or cp in newer
        assert bool(_HIDDEN.fullmatch(ch)) == expected, hex(cp)


@pytest.mark.parametrize(
    "cp",
    [
        *range(0x202A, 0x202F),  # bidi embeddings and overrides
        *range(0x2066, 0x206A),  # bidi isolates
        *range(0x200B, 0x2010),  # zero-width space, joiners, LRM, RLM
        0x061C,  # Arabic letter mark
        0xFEFF,  # zero-width no-break space
        0x2028,
        0x2029,
        0x00,
        0x07,
        0x1B,
        0x7F,
        0x85,
        0x9B,  # C1 CSI
        0x2060,
        0x00AD,
        0xE0041,  # a tag character (invisible text)
    ],
)
def test_layout_and_invisible_characters_are_shown_not_applied(cp):
    text = f"a{chr(cp)}b"
    assert visible(text) == f"a⟨U+{cp:04X}⟩b"
    assert visible(text, lines=False) == f"a⟨U+{cp:04X}⟩b"


def test_lines_keep_newline_and_tab_and_one_line_fields_do_not():
    assert visible("one\n\ttwo") == "one\n\ttwo"
    assert visible("one\n\ttwo", lines=False) == "one⟨U+000A⟩⟨U+0009⟩two"
    assert visible("a\rb") == "a⟨U+000D⟩b"


@pytest.mark.parametrize(
    "emoji",
    [
        "\U0001f469\u200d\U0001f4bb",  # woman technologist
        "\U0001f3f3\ufe0f\u200d\U0001f308",  # rainbow flag (VS16 before the joiner)
        "\U0001f469\U0001f3fd\u200d\U0001f4bb",  # with a skin tone
        "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family
    ],
)
def test_a_joiner_inside_an_emoji_sequence_is_kept(emoji):
    assert visible(f"hi {emoji}!") == f"hi {emoji}!"


def test_a_joiner_between_letters_or_at_an_edge_is_shown():
    assert visible("a\u200db") == "a⟨U+200D⟩b"
    assert visible("\u200d\U0001f4bb") == "⟨U+200D⟩\U0001f4bb"
    assert visible("\U0001f469\u200d") == "\U0001f469⟨U+200D⟩"


def test_ordinary_text_is_unchanged():
    text = "Grüße, 你好, שלום, مرحبا, l’été\u00a0: 10\u202f% ✓ 👍🏽 \U000e0000"
    assert visible(text) == text  # U+E0000 is unassigned, not hidden
