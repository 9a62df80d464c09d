"""Received file names: made safe, placed without collisions, never overwriting."""

import os
import stat
import threading
import unicodedata

import pytest

from enclave.node.filenames import (
    MAX_NAME_BYTES,
    PART_SUFFIX,
    UnsafeName,
    discard,
    finish,
    numbered,
    place_download,
    room_for,
    safe_name,
    split_ext,
)

# -- safe_name -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "etc_passwd"),
        ("/etc/shadow", "etc_shadow"),
        ("a/b", "a_b"),
        ("a//b", "a_b"),
        ("a/./b/../c", "a_b_c"),
        ("C:\\x", "C__x"),
        ("..\\..\\Windows\\System32\\evil.dll", "Windows_System32_evil.dll"),
        ('what?<now>|"*".txt', "what__now_____.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),  # RLO: the real extension shows
        ("pay\u2066ment\u2069.pdf\u200f", "payment.pdf"),
        ("zero\u200bwidth\ufeff\u2060.txt", "zerowidth.txt"),
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("line\nbreak\r\t.txt", "linebreak.txt"),
        ("esc\x1b[31mred.txt", "esc[31mred.txt"),
        ("soft\u00adhyphen.txt", "softhyphen.txt"),
        ("lone\ud800surrogate.txt", "lonesurrogate.txt"),
        (".bashrc", "bashrc"),
        ("...hidden", "hidden"),
        (". .x", "x"),
        ("trailing. . .", "trailing"),
        ("  spaced  ", "spaced"),
        ("notes.txt.", "notes.txt"),
        ("a..b.txt", "a..b.txt"),  # dots inside a name hide and traverse nothing
        ("photo 🐈.jpg", "photo 🐈.jpg"),
        ("👩\u200d💻 work.txt", "👩\u200d💻 work.txt"),  # a joiner between pictographs stays
        ("👍🏽.png", "👍🏽.png"),
        ("Ａｂｃ.txt", "Ａｂｃ.txt"),
        ("日本語のファイル.txt", "日本語のファイル.txt"),
    ],
)
def test_hostile_and_ordinary_names(received, expected):
    assert safe_name(received) == expected


@pytest.mark.parametrize(
    "device",
    ["CON", "con", "CON.txt", "Con.tar.gz", "PRN", "aux.c", "NUL", "nul", "COM1", "com9.log",
     "LPT1", "lpt9.txt", "COM¹", "CON .txt"],
)  # fmt: skip
def test_device_names_never_come_out(device):
    assert safe_name(device) == "_" + device  # a plain file, still recognisable


@pytest.mark.parametrize("fine", ["CONSOLE.txt", "com10", "lpt", "nullable.py", "xCON"])
def test_names_that_only_look_like_devices_stay(fine):
    assert safe_name(fine) == fine


@pytest.mark.parametrize(
    "empty",
    ["", ".", "..", "...", "/", "\\", "../..", "./.", " ", "\u202e", "\u200b\u200b", "\x00",
     "?", "/./../", ". . ."],
)  # fmt: skip
def test_names_with_nothing_left_are_refused(empty):
    with pytest.raises(UnsafeName):
        safe_name(empty)
    with pytest.raises(ValueError):  # a ValueError for callers that do not know the class
        safe_name(empty)


def test_not_a_string_is_a_programming_error():
    with pytest.raises(TypeError):
        safe_name(b"bytes.txt")  # type: ignore[arg-type]


def test_absurdly_long_input_is_refused_before_any_work():
    with pytest.raises(UnsafeName):
        safe_name("a" * 1_000_000)


def test_long_names_are_cut_to_255_bytes_keeping_the_extension():
    name = safe_name("x" * 10_000 + ".pdf")
    assert len(name.encode()) == MAX_NAME_BYTES and name.endswith("x.pdf")
    wide = safe_name("é" * 300 + ".tar.gz")  # two bytes each: never half a character
    assert wide.endswith("é.tar.gz") and len(wide.encode()) <= MAX_NAME_BYTES
    emoji = safe_name("🐈" * 100)  # four bytes each
    assert emoji == "🐈" * 63
    joined = safe_name("a" * 251 + "👩\u200d💻")  # the cut falls inside the joiner
    assert joined == "a" * 251 + "👩"  # no dangling joiner, no half pictograph


def test_a_cut_leaves_no_lone_combining_mark():
    name = safe_name("a" * 253 + "e\u0301\u0301")  # NFC keeps one mark separate
    assert not unicodedata.combining(name[-1])


def test_names_are_nfc():
    assert safe_name("cafe\u0301.txt") == "caf\u00e9.txt"
    assert unicodedata.is_normalized("NFC", safe_name("Å\u0308ngström.txt"))


def test_a_hidden_character_cannot_rebuild_a_traversal():
    assert safe_name(".\u200b./x") == "x"
    assert safe_name("C\u200bON") == "_CON"


def test_the_result_is_always_safe_for_many_inputs():
    pieces = ["a", ".", "..", "/", "\\", "\u202e", "\u200d", "\x00", " ", "CON", "é", "🐈", ":"]
    import itertools

    for combo in itertools.product(pieces, repeat=3):
        try:
            name = safe_name("".join(combo))
        except UnsafeName:
            continue
        assert name and "/" not in name and "\\" not in name and "\x00" not in name
        assert name not in (".", "..") and not name.startswith(".")
        assert not name.endswith((".", " ")) and len(name.encode()) <= MAX_NAME_BYTES
        assert "\u202e" not in name


# -- numbering -----------------------------------------------------------------------------


def test_split_ext():
    assert split_ext("a.txt") == ("a", ".txt")
    assert split_ext("archive.tar.gz") == ("archive", ".tar.gz")
    assert split_ext("x.TAR.XZ") == ("x", ".TAR.XZ")
    assert split_ext("notes.gz") == ("notes", ".gz")
    assert split_ext("Makefile") == ("Makefile", "")
    assert split_ext("_bashrc") == ("_bashrc", "")
    assert split_ext("a." + "x" * 40) == ("a." + "x" * 40, "")


def test_numbered():
    assert numbered("a.txt", 0) == "a.txt"
    assert numbered("a.txt", 1) == "a (1).txt"
    assert numbered("archive.tar.gz", 2) == "archive (2).tar.gz"
    assert numbered("README", 3) == "README (3)"
    long = numbered("x" * 300 + ".pdf", 12)
    assert long.endswith("x (12).pdf")
    assert len((long + PART_SUFFIX).encode()) <= MAX_NAME_BYTES


def test_second_file_of_a_name_is_numbered(tmp_path):
    first = place_download(tmp_path, "photo.jpg")
    assert first.final == tmp_path / "photo.jpg" and first.part == tmp_path / "photo.jpg.part"
    assert first.part.exists() and not first.final.exists()
    assert finish(first.part, first.final) == tmp_path / "photo.jpg"
    second = place_download(tmp_path, "photo.jpg")
    assert second.final == tmp_path / "photo (1).jpg"
    assert finish(second.part, second.final) == tmp_path / "photo (1).jpg"
    third = place_download(tmp_path, "archive.tar.gz")
    finish(third.part, third.final)
    assert place_download(tmp_path, "archive.tar.gz").final.name == "archive (1).tar.gz"


def test_part_is_created_private_and_empty(tmp_path):
    placed = place_download(tmp_path, "a.txt")
    mode = stat.S_IMODE(placed.part.stat().st_mode)
    assert mode == 0o600 and placed.part.stat().st_size == 0


def test_numbering_skips_every_taken_name(tmp_path):
    (tmp_path / "doc.txt").write_text("mine")
    for n in range(1, 40):
        (tmp_path / f"doc ({n}).txt").write_text("mine")
    (tmp_path / "doc (40).txt.part").write_text("another transfer's")
    os.symlink("/nowhere", tmp_path / "doc (41).txt")  # a dangling link counts as taken
    placed = place_download(tmp_path, "doc.txt")
    assert placed.final.name == "doc (42).txt"
    assert (tmp_path / "doc.txt").read_text() == "mine"


def test_a_planted_symlink_part_is_not_followed(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep")
    os.symlink(target, tmp_path / "a.txt.part")
    placed = place_download(tmp_path, "a.txt")
    assert placed.part.name == "a (1).txt.part"
    assert target.read_text() == "keep"


def test_finish_never_overwrites_a_file_that_appeared_meanwhile(tmp_path):
    placed = place_download(tmp_path, "a.txt")
    placed.part.write_bytes(b"received")
    (tmp_path / "a.txt").write_text("the user's own")
    (tmp_path / "a (1).txt").write_text("also theirs")
    landed = finish(placed.part, placed.final)
    assert landed == tmp_path / "a (2).txt" and landed.read_bytes() == b"received"
    assert (tmp_path / "a.txt").read_text() == "the user's own"
    assert (tmp_path / "a (1).txt").read_text() == "also theirs"
    assert not placed.part.exists()


def test_finish_counts_on_from_a_numbered_name(tmp_path):
    (tmp_path / "a (3).txt").write_text("x")
    part = tmp_path / "a (3).txt.part"
    part.write_text("y")
    assert finish(part, tmp_path / "a (3).txt").name == "a (4).txt"


def test_finish_without_hard_links_still_never_overwrites(tmp_path, monkeypatch):
    def no_links(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    placed = place_download(tmp_path, "a.txt")
    placed.part.write_bytes(b"new")
    (tmp_path / "a.txt").write_text("old")
    landed = finish(placed.part, placed.final)
    assert landed.name == "a (1).txt" and landed.read_bytes() == b"new"
    assert (tmp_path / "a.txt").read_text() == "old" and not placed.part.exists()


def test_discard_removes_the_part_once(tmp_path):
    placed = place_download(tmp_path, "a.txt")
    discard(placed.part)
    discard(placed.part)  # gone already: fine
    assert list(tmp_path.iterdir()) == []


def test_concurrent_placements_never_share_a_part(tmp_path):
    results, barrier = [], threading.Barrier(16)

    def place():
        barrier.wait()
        results.append(place_download(tmp_path, "same.bin"))

    threads = [threading.Thread(target=place) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.part for r in results}) == len({r.final for r in results}) == 16


def test_concurrent_finishes_never_overwrite(tmp_path):
    parts = []
    for i in range(12):
        part = tmp_path / f"in{i}.part"
        part.write_text(str(i))
        parts.append(part)
    landed, barrier = [], threading.Barrier(len(parts))

    def land(part):
        barrier.wait()
        landed.append(finish(part, tmp_path / "x.txt"))

    threads = [threading.Thread(target=land, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(landed)) == 12
    assert sorted(p.read_text() for p in landed) == sorted(str(i) for i in range(12))


def test_room_for_keeps_the_margin(tmp_path, monkeypatch):
    import shutil

    usage = shutil.disk_usage(tmp_path)._replace(free=10_000)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage)
    assert room_for(tmp_path, 4_000, 6_000)
    assert not room_for(tmp_path, 4_001, 6_000)
    assert room_for(tmp_path, 9_000, 6_000, held=5_000)  # only what is still to come
    assert room_for(tmp_path, 100, 0, held=500)


def test_room_for_a_folder_that_cannot_be_asked(tmp_path):
    assert not room_for(tmp_path / "missing", 1, 0)
