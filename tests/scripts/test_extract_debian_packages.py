"""Tests for scripts/extract_debian_packages.py on small inline apt stanzas."""

import gzip
import json
from pathlib import Path

import pytest

from scripts import extract_debian_packages as extract
from scripts.extract_debian_packages import (
    Package,
    collect_packages,
    compare_versions,
    evenly_spaced,
    load_translations,
    main,
    parse_stanzas,
    parse_tags,
    read_text_file,
    render_long_description,
    select_packages,
    strip_section_prefix,
)

DUMPAVAIL = """\
Package: hello
Version: 2.10-3
Installed-Size: 280
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Description: example package based on GNU hello
Description-md5: aaaa0000000000000000000000000001
Tag: devel::examples, implemented-in::c, interface::commandline,
 role::program, scope::utility
Section: devel
Priority: optional

Package: hello
Version: 2.10-10
Installed-Size: 290
Maintainer: Santiago Vila <sanvila@debian.org>
Description: example package based on GNU hello
Description-md5: aaaa0000000000000000000000000001
Section: devel
Priority: optional

Package: unrar
Version: 1:6.2.6-1
Maintainer: Debian Med <debian-med@lists.debian.org>
Description: Unarchiver for .rar files (non-free version)
Description-md5: aaaa0000000000000000000000000002
Section: non-free/utils
Priority: optional

Package: nodoc
Version: 1.0
Description: has no translation entry
Description-md5: aaaa0000000000000000000000000099
Section: misc
Priority: optional

Package: inline
Version: 0.1
Installed-Size: 12
Description: keeps its long description inline
 First paragraph.
 .
 Second paragraph.
Section: contrib/net
Priority: extra
"""

TRANSLATION = """\
Package: hello
Description-md5: aaaa0000000000000000000000000001
Description-en: example package based on GNU hello
 The GNU hello program produces a familiar, friendly greeting.  It
 allows non-programmers to use a classic computer science tool.
 .
 Features:
   * greets the world
   * greets you

Package: unrar
Description-md5: aaaa0000000000000000000000000002
Description-en: Unarchiver for .rar files (non-free version)
 Unrar can extract files from .rar archives.
"""


def _package(name: str, section: str = "misc", tags: tuple[str, ...] = ()) -> Package:
    """Build a minimal record for the selection tests."""
    return Package(
        name=name,
        summary=f"{name} summary",
        description=f"{name} description",
        section=section,
        priority="optional",
        tags=tags,
        maintainer="Someone <someone@example.org>",
        version="1.0",
        installed_size=1,
    )


def _write_inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Write the inline dumpavail and Translation-en samples; return their paths."""
    dumpavail = tmp_path / "dumpavail.txt"
    translation = tmp_path / "Translation-en"
    dumpavail.write_text(DUMPAVAIL, encoding="utf-8")
    translation.write_text(TRANSLATION, encoding="utf-8")
    return dumpavail, translation


def _run_main(tmp_path: Path, output: Path, limit: int = 10) -> list[dict[str, object]]:
    """Run the command line on the inline samples and return the written records."""
    dumpavail, translation = _write_inputs(tmp_path)
    argv = ["--dumpavail", str(dumpavail), "--translations", str(translation)]
    assert main([*argv, "--output", str(output), "--limit", str(limit)]) == 0
    with gzip.open(output, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def test_parse_stanzas_keeps_continuation_lines() -> None:
    stanzas = list(parse_stanzas(DUMPAVAIL.splitlines()))

    assert [stanza["Package"] for stanza in stanzas] == ["hello", "hello", "unrar", "nodoc", "inline"]
    assert stanzas[4]["Description"] == ("keeps its long description inline\n First paragraph.\n .\n Second paragraph.")


def test_parse_stanzas_handles_missing_trailing_blank_line() -> None:
    stanzas = list(parse_stanzas(["Package: a", "", "", "Package: b"]))

    assert stanzas == [{"Package": "a"}, {"Package": "b"}]


def test_parse_tags_spans_continuation_lines() -> None:
    tag_value = next(parse_stanzas(DUMPAVAIL.splitlines()))["Tag"]

    assert parse_tags(tag_value) == (
        "devel::examples",
        "implemented-in::c",
        "interface::commandline",
        "role::program",
        "scope::utility",
    )


def test_parse_tags_empty_value() -> None:
    assert parse_tags("") == ()


def test_render_long_description_paragraph_breaks() -> None:
    lines = [" First line", " continues here.", " .", " Second paragraph."]

    assert render_long_description(lines) == "First line continues here.\n\nSecond paragraph."


def test_render_long_description_keeps_verbatim_lines() -> None:
    lines = [" Features:", "   * one", "   * two", " Back to text."]

    assert render_long_description(lines) == "Features:\n  * one\n  * two\nBack to text."


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("web", "web"),
        ("contrib/net", "net"),
        ("non-free/utils", "utils"),
        ("non-free-firmware/kernel", "kernel"),
    ],
)
def test_strip_section_prefix_drops_archive_area(section: str, expected: str) -> None:
    assert strip_section_prefix(section) == expected


@pytest.mark.parametrize(
    ("left", "right", "expected"),
    [
        ("2.10-10", "2.10-3", 1),
        ("1:0.9", "2.0", 1),
        ("1.0~rc1", "1.0", -1),
        ("1.0", "1.0+deb12u1", -1),
        ("1.0a", "1.0+", -1),
        ("1.01", "1.1", 0),
        ("1.0-1", "1.0-1", 0),
    ],
)
def test_compare_versions_follows_dpkg_ordering(left: str, right: str, expected: int) -> None:
    assert compare_versions(left, right) == expected
    assert compare_versions(right, left) == -expected


def test_load_translations_keys_by_description_md5() -> None:
    translations = load_translations(parse_stanzas(TRANSLATION.splitlines()))

    assert set(translations) == {"aaaa0000000000000000000000000001", "aaaa0000000000000000000000000002"}
    assert translations["aaaa0000000000000000000000000002"] == (
        "Unarchiver for .rar files (non-free version)",
        "Unrar can extract files from .rar archives.",
    )


def test_collect_packages_joins_by_description_md5() -> None:
    translations = load_translations(parse_stanzas(TRANSLATION.splitlines()))

    packages = collect_packages(parse_stanzas(DUMPAVAIL.splitlines()), translations)

    assert sorted(packages) == ["hello", "inline", "unrar"]  # "nodoc" has no long description
    assert packages["hello"].description == (
        "The GNU hello program produces a familiar, friendly greeting.  It allows non-programmers"
        " to use a classic computer science tool.\n\nFeatures:\n  * greets the world\n  * greets you"
    )
    assert packages["unrar"].section == "utils"
    assert packages["inline"].description == "First paragraph.\n\nSecond paragraph."


def test_collect_packages_keeps_highest_version() -> None:
    translations = load_translations(parse_stanzas(TRANSLATION.splitlines()))

    packages = collect_packages(parse_stanzas(DUMPAVAIL.splitlines()), translations)

    # A plain string compare would pick "2.10-3" over "2.10-10".
    assert packages["hello"].version == "2.10-10"
    assert packages["hello"].installed_size == 290
    assert packages["hello"].tags == ()


def test_evenly_spaced_spreads_over_the_list() -> None:
    assert evenly_spaced(list(range(10)), 3) == [0, 3, 6]
    assert evenly_spaced([1, 2], 5) == [1, 2]
    assert evenly_spaced([1, 2], 0) == []


def test_select_packages_is_deterministic() -> None:
    packages = {
        f"pkg{index:03d}": _package(f"pkg{index:03d}", section=f"s{index % 7}", tags=("role::program",) * (index % 2))
        for index in range(200)
    }
    shuffled = dict(reversed(list(packages.items())))

    first = select_packages(packages, 30, must_include=())
    second = select_packages(shuffled, 30, must_include=())

    assert first == second
    assert len(first) == 30
    assert [package.name for package in first] == sorted(package.name for package in first)
    assert {package.section for package in first} == {f"s{index}" for index in range(7)}


def test_select_packages_includes_popular_names() -> None:
    packages = {name: _package(name) for name in ("aaa", "bbb", "ccc", "nginx", "zzz")}

    selected = select_packages(packages, 2, must_include=("nginx", "not-in-lists"))

    assert "nginx" in [package.name for package in selected]
    assert len(selected) == 2


def test_select_packages_prefers_tagged_packages() -> None:
    packages = {f"u{index}": _package(f"u{index}") for index in range(10)}
    packages |= {f"t{index}": _package(f"t{index}", tags=("role::program",)) for index in range(10)}

    selected = select_packages(packages, 4, must_include=())

    assert all(package.tags for package in selected)


def test_read_text_file_decompresses_gzip(tmp_path: Path) -> None:
    path = tmp_path / "list_i18n_Translation-en.gz"
    path.write_bytes(gzip.compress(TRANSLATION.encode("utf-8")))

    assert read_text_file(path) == TRANSLATION


def test_main_writes_expected_records(tmp_path: Path) -> None:
    records = _run_main(tmp_path, tmp_path / "out" / "packages.jsonl.gz")

    assert [record["id"] for record in records] == ["hello", "inline", "unrar"]
    assert records[1] == {
        "id": "inline",
        "name": "inline",
        "summary": "keeps its long description inline",
        "description": "First paragraph.\n\nSecond paragraph.",
        "section": "net",
        "priority": "extra",
        "tags": [],
        "maintainer": "",
        "version": "0.1",
        "installed_size": 12,
    }
    assert records[2]["installed_size"] == 0


def test_main_gzip_is_reproducible(tmp_path: Path) -> None:
    first, second = tmp_path / "first.jsonl.gz", tmp_path / "second.jsonl.gz"

    _run_main(tmp_path, first)
    _run_main(tmp_path, second)

    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\x00\x00\x00\x00"  # gzip header MTIME


def test_main_missing_translations_prints_update_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dumpavail, _ = _write_inputs(tmp_path)
    monkeypatch.setattr(extract, "find_translation_files", lambda: [])

    status = main(["--dumpavail", str(dumpavail), "--output", str(tmp_path / "out.jsonl.gz")])

    assert status == 1
    assert "apt-get -o Acquire::Languages=en update" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl.gz").exists()


def test_find_translation_files_matches_only_translation_lists(tmp_path: Path) -> None:
    wanted = tmp_path / "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-en.lz4"
    wanted.write_bytes(b"")
    (tmp_path / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4").write_bytes(b"")
    (tmp_path / "deb.debian.org_debian_dists_bookworm_main_i18n_Translation-de.lz4").write_bytes(b"")

    assert extract.find_translation_files(tmp_path) == [wanted]
