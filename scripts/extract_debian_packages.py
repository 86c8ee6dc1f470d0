"""Build the demo data set ``data/debian-packages.jsonl.gz`` from apt's package lists.

Package metadata comes from ``apt-cache dumpavail`` (RFC 822 stanzas); long descriptions come
from apt's ``Translation-en`` lists, joined on ``Description-md5`` because modern ``Packages``
files only carry the one-line summary.

Usage (from the repository root)::

    python scripts/extract_debian_packages.py [--output PATH] [--limit N]
        [--dumpavail FILE] [--translations FILE ...]

Each output line is one JSON object with the keys id, name, summary, description, section,
priority, tags, maintainer, version and installed_size. The gzip header carries no timestamp
and no file name, so the same input always yields byte-for-byte the same file.
"""

import argparse
import bz2
import gzip
import io
import json
import lzma
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby, zip_longest
from pathlib import Path

DEFAULT_OUTPUT = Path("data/debian-packages.jsonl.gz")
# Sized for the demo: 5000 bookworm (main) records make about 0.94 MB of gzip.
DEFAULT_LIMIT = 5000
APT_LISTS_DIR = Path("/var/lib/apt/lists")
APT_HELPER = "/usr/lib/apt/apt-helper"
UPDATE_HINT = "run `apt-get -o Acquire::Languages=en update` (as root) to download them"

# Names a demo user is likely to type. They are always kept (when present in the lists and
# they have a long description), whatever the sampling would have picked.
POPULAR_PACKAGES: tuple[str, ...] = (
    "nginx",
    "postgresql",
    "python3",
    "curl",
    "git",
    "vim",
    "emacs",
    "libreoffice",
    "firefox-esr",
    "redis-server",
    "apache2",
    "openssh-server",
    "docker.io",
    "htop",
    "tmux",
    "gimp",
    "inkscape",
    "ffmpeg",
    "imagemagick",
)

# apt stores lists compressed with whatever the mirror offered; match the Translation-en file
# itself, not its ".diff/" directory or a half-downloaded file in partial/.
_TRANSLATION_NAME = re.compile(r"_i18n_Translation-en(\.(lz4|gz|xz|bz2|lzma|zst))?$")
# dpkg compares versions as alternating non-digit / digit runs; ASCII so "\d" means 0-9 only.
_VERSION_TOKEN = re.compile(r"(\D*)(\d*)", re.ASCII)

Stanza = dict[str, str]


class ExtractError(Exception):
    """A problem the user has to fix (missing lists, unreadable file); printed without a traceback."""


@dataclass(frozen=True, slots=True)
class Package:
    """One output record; field order is the JSON key order."""

    name: str
    summary: str
    description: str
    section: str
    priority: str
    tags: tuple[str, ...]
    maintainer: str
    version: str
    installed_size: int

    def to_json_dict(self) -> dict[str, object]:
        """Return the record as the JSON object written to the data file."""
        return {
            "id": self.name,
            "name": self.name,
            "summary": self.summary,
            "description": self.description,
            "section": self.section,
            "priority": self.priority,
            "tags": list(self.tags),
            "maintainer": self.maintainer,
            "version": self.version,
            "installed_size": self.installed_size,
        }


# --- RFC 822 / deb822 parsing -------------------------------------------------------------


def parse_stanzas(lines: Iterable[str]) -> Iterator[Stanza]:
    """Yield each stanza as a field -> value mapping.

    A multi-line value keeps its continuation lines verbatim (leading space included) after a
    newline, so that field-specific parsers (descriptions, tags) can apply their own rules.
    """
    stanza: Stanza = {}
    field: str | None = None
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line.strip():
            if stanza:
                yield stanza
            stanza, field = {}, None
        elif line[0] in " \t":
            # A continuation line before any field is malformed; dropping it beats crashing.
            if field is not None:
                stanza[field] += "\n" + line
        elif ":" in line:
            field, _, value = line.partition(":")
            stanza[field] = value.strip()
    if stanza:
        yield stanza


def parse_tags(value: str) -> tuple[str, ...]:
    """Split a debtags ``Tag`` value (comma-separated, possibly over several lines)."""
    return tuple(tag.strip() for tag in value.split(",") if tag.strip())


def strip_section_prefix(section: str) -> str:
    """Drop the archive area ("contrib/", "non-free/", ...) so only the section remains."""
    return section.rpartition("/")[2].strip()


def split_description(value: str) -> tuple[str, list[str]]:
    """Split a ``Description`` value into its summary line and its raw continuation lines."""
    first, *rest = value.split("\n")
    return first.strip(), rest


def render_long_description(lines: Sequence[str]) -> str:
    """Turn Debian description continuation lines into plain text.

    Follows Debian Policy 5.6.13: a " ." line is a paragraph break (rendered as a blank line);
    lines starting with a single space are wrapped text, so they are joined with spaces; lines
    starting with two or more spaces are preformatted (lists, code) and kept as separate lines
    with only the first space removed.
    """
    paragraphs: list[str] = []
    current: list[str] = []
    last_verbatim = True  # so the first text line of a paragraph starts a new line
    for raw in lines:
        line = raw[1:] if raw[:1] in (" ", "\t") else raw
        if line.strip() == ".":
            if current:
                paragraphs.append("\n".join(current))
            current, last_verbatim = [], True
        elif line[:1] in (" ", "\t"):
            current.append(line.rstrip())
            last_verbatim = True
        elif line.strip():
            if last_verbatim:
                current.append(line.strip())
            else:
                current[-1] += " " + line.strip()
            last_verbatim = False
    if current:
        paragraphs.append("\n".join(current))
    return "\n\n".join(paragraphs)


def parse_installed_size(value: str | None) -> int:
    """Return ``Installed-Size`` in KiB, or 0 when it is missing or not a number."""
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


# --- Debian version comparison ------------------------------------------------------------


def _char_order(char: str) -> int:
    """Rank one non-digit character as dpkg does: "~" < end of string < letters < the rest."""
    if char == "~":
        return -1
    if char.isascii() and char.isalpha():
        return ord(char)
    return ord(char) + 256


def _compare_fragment(left: str, right: str) -> int:
    """Compare an upstream version or Debian revision with dpkg's ``verrevcmp`` rules."""
    # Padding the shorter side with empty runs mirrors dpkg reading past the end of a string.
    pairs = zip_longest(_VERSION_TOKEN.findall(left), _VERSION_TOKEN.findall(right), fillvalue=("", ""))
    for (left_text, left_digits), (right_text, right_digits) in pairs:
        for index in range(max(len(left_text), len(right_text))):
            # 0 stands for "end of this run", which sorts after "~" and before letters.
            left_rank = _char_order(left_text[index]) if index < len(left_text) else 0
            right_rank = _char_order(right_text[index]) if index < len(right_text) else 0
            if left_rank != right_rank:
                return -1 if left_rank < right_rank else 1
        left_number, right_number = int(left_digits or "0"), int(right_digits or "0")
        if left_number != right_number:
            return -1 if left_number < right_number else 1
    return 0


def _split_version(version: str) -> tuple[int, str, str]:
    """Split ``[epoch:]upstream[-revision]`` into its three parts (epoch 0 when absent)."""
    epoch, colon, rest = version.partition(":")
    if not colon:
        epoch, rest = "0", version
    upstream, dash, revision = rest.rpartition("-")
    if not dash:
        upstream, revision = rest, ""
    return (int(epoch) if epoch.isdigit() else 0), upstream, revision


def compare_versions(left: str, right: str) -> int:
    """Compare two Debian version strings; return -1, 0 or 1 like dpkg --compare-versions."""
    left_epoch, left_upstream, left_revision = _split_version(left)
    right_epoch, right_upstream, right_revision = _split_version(right)
    if left_epoch != right_epoch:
        return -1 if left_epoch < right_epoch else 1
    return _compare_fragment(left_upstream, right_upstream) or _compare_fragment(left_revision, right_revision)


# --- Joining packages with their long descriptions ----------------------------------------


def load_translations(stanzas: Iterable[Stanza]) -> dict[str, tuple[str, str]]:
    """Map ``Description-md5`` to (summary, long description) from Translation-en stanzas.

    The md5 is a digest of the English description text itself, so it identifies the text
    regardless of which package (or which list file) the stanza came from.
    """
    translations: dict[str, tuple[str, str]] = {}
    for stanza in stanzas:
        md5 = stanza.get("Description-md5")
        value = stanza.get("Description-en")
        if md5 and value is not None:
            summary, lines = split_description(value)
            translations.setdefault(md5, (summary, render_long_description(lines)))
    return translations


def build_package(stanza: Stanza, translations: dict[str, tuple[str, str]]) -> Package | None:
    """Make a record from a dumpavail stanza, or None when it has no long description."""
    name = stanza.get("Package", "").strip()
    summary, inline_lines = split_description(stanza.get("Description", ""))
    # Some repositories still ship the full description in Packages; prefer it when present.
    description = render_long_description(inline_lines)
    translated = translations.get(stanza.get("Description-md5", "").strip())
    if not description and translated is not None:
        summary = summary or translated[0]
        description = translated[1]
    if not name or not description:
        return None
    return Package(
        name=name,
        summary=summary,
        description=description,
        section=strip_section_prefix(stanza.get("Section", "")),
        priority=stanza.get("Priority", "").strip(),
        tags=parse_tags(stanza.get("Tag", "")),
        maintainer=stanza.get("Maintainer", "").strip(),
        version=stanza.get("Version", "").strip(),
        installed_size=parse_installed_size(stanza.get("Installed-Size")),
    )


def collect_packages(stanzas: Iterable[Stanza], translations: dict[str, tuple[str, str]]) -> dict[str, Package]:
    """Keep one record per package name: the highest version when a name appears twice."""
    packages: dict[str, Package] = {}
    for stanza in stanzas:
        package = build_package(stanza, translations)
        if package is None:
            continue
        known = packages.get(package.name)
        if known is None or compare_versions(package.version, known.version) > 0:
            packages[package.name] = package
    return packages


# --- Sampling -----------------------------------------------------------------------------


def evenly_spaced[T](items: Sequence[T], count: int) -> list[T]:
    """Pick ``count`` items spread evenly over ``items`` (all of them when there are fewer)."""
    if count >= len(items):
        return list(items)
    if count <= 0:
        return []
    # i * n // k is strictly increasing when n > k, so no item is picked twice.
    return [items[index * len(items) // count] for index in range(count)]


def select_packages(
    packages: dict[str, Package], limit: int, must_include: Sequence[str] = POPULAR_PACKAGES
) -> list[Package]:
    """Choose up to ``limit`` packages deterministically, sorted by name.

    The ``must_include`` names present are taken first. The rest is spread over the sections
    in proportion to their size: an evenly spaced sample over all packages ordered by
    (section, name) sets each section's quota. Within a section, packages with debtags are
    preferred when there are enough of them (their tags make the demo's facets richer); a
    global "tagged only" pool would starve sections where tagging lags, such as python.
    """
    chosen = [packages[name] for name in sorted(set(must_include)) if name in packages][:limit]
    chosen_names = {package.name for package in chosen}
    remaining = sorted(
        (package for package in packages.values() if package.name not in chosen_names),
        key=lambda package: (package.section, package.name),
    )
    quotas = Counter(package.section for package in evenly_spaced(remaining, limit - len(chosen)))
    for section, group in groupby(remaining, key=lambda package: package.section):
        candidates = list(group)
        tagged = [package for package in candidates if package.tags]
        quota = quotas[section]
        chosen.extend(evenly_spaced(tagged if len(tagged) >= quota else candidates, quota))
    return sorted(chosen, key=lambda package: package.name)


# --- Input and output ---------------------------------------------------------------------


def read_text_file(path: Path) -> str:
    """Read a list file, decompressing it by its suffix.

    gzip/xz/bz2 use the standard library; other formats (apt's default lz4, zstd) go through
    ``apt-helper cat-file`` so that no lz4 tool or third-party module is needed.
    """
    try:
        match path.suffix:
            case ".gz":
                data = gzip.decompress(path.read_bytes())
            case ".xz" | ".lzma":
                data = lzma.decompress(path.read_bytes())
            case ".bz2":
                data = bz2.decompress(path.read_bytes())
            case ".lz4" | ".zst":
                data = run_command([APT_HELPER, "cat-file", str(path)])
            case _:
                data = path.read_bytes()
    except OSError as error:
        raise ExtractError(f"cannot read {path}: {error}") from error
    # Descriptions are UTF-8 by policy; a stray bad byte should not abort the whole build.
    return data.decode("utf-8", errors="replace")


def run_command(command: Sequence[str]) -> bytes:
    """Run a command and return its stdout, turning failures into an ExtractError."""
    try:
        completed = subprocess.run(command, capture_output=True, check=True)
    except FileNotFoundError as error:
        raise ExtractError(f"{command[0]} not found; this needs a Debian/Ubuntu system") from error
    except subprocess.CalledProcessError as error:
        stderr = error.stderr.decode("utf-8", errors="replace").strip()
        raise ExtractError(f"{' '.join(command)} failed: {stderr}") from error
    return completed.stdout


def find_translation_files(lists_dir: Path = APT_LISTS_DIR) -> list[Path]:
    """Return apt's downloaded Translation-en lists, sorted so the join order is stable."""
    if not lists_dir.is_dir():
        return []
    return sorted(path for path in lists_dir.iterdir() if path.is_file() and _TRANSLATION_NAME.search(path.name))


def write_jsonl_gz(packages: Iterable[Package], output: Path) -> int:
    """Write one JSON object per line as reproducible gzip; return the file size in bytes.

    ``mtime=0`` and an empty ``filename`` keep the gzip header free of the build time and the
    output path. The file is written next to the target and renamed so a failed run never
    leaves a truncated data file behind.
    """
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        for package in packages:
            line = json.dumps(package.to_json_dict(), ensure_ascii=False) + "\n"
            stream.write(line.encode("utf-8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(f".{output.name}.tmp")
    try:
        temporary.write_bytes(buffer.getvalue())
        os.replace(temporary, output)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return len(buffer.getvalue())


# --- Command line -------------------------------------------------------------------------


def positive_int(value: str) -> int:
    """argparse type for ``--limit``: a strictly positive integer."""
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: %(default)s")
    parser.add_argument("--limit", type=positive_int, default=DEFAULT_LIMIT, help="default: %(default)s")
    parser.add_argument(
        "--dumpavail", type=Path, help="read this apt-cache dumpavail output instead of running apt-cache"
    )
    parser.add_argument(
        "--translations",
        type=Path,
        nargs="+",
        help=f"Translation-en files to use instead of those in {APT_LISTS_DIR}",
    )
    return parser.parse_args(argv)


def extract(dumpavail_text: str, translation_texts: Iterable[str], limit: int, output: Path) -> list[Package]:
    """Parse, join, sample and write; return the records written."""
    translations: dict[str, tuple[str, str]] = {}
    for text in translation_texts:
        for md5, entry in load_translations(parse_stanzas(text.splitlines())).items():
            translations.setdefault(md5, entry)
    packages = collect_packages(parse_stanzas(dumpavail_text.splitlines()), translations)
    if not packages:
        # Usually the Translation-en lists are missing or belong to another release.
        raise ExtractError(f"no package has a long description in the Translation-en lists; {UPDATE_HINT}")
    selected = select_packages(packages, limit)
    write_jsonl_gz(selected, output)
    return selected


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(argv)
    try:
        translation_files: list[Path] = args.translations or find_translation_files()
        if not translation_files:
            raise ExtractError(f"no Translation-en list found in {APT_LISTS_DIR}; {UPDATE_HINT}")
        if args.dumpavail is not None:
            dumpavail_text = read_text_file(args.dumpavail)
        else:
            dumpavail_text = run_command(["apt-cache", "dumpavail"]).decode("utf-8", errors="replace")
        selected = extract(
            dumpavail_text, (read_text_file(path) for path in translation_files), args.limit, args.output
        )
    except ExtractError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    size = args.output.stat().st_size
    print(f"wrote {len(selected)} packages to {args.output} ({size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
