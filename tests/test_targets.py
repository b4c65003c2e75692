"""The catalog and the mirror read from apt sources."""

from __future__ import annotations

import pytest

from kprobe_docs.build.environment import image_in
from kprobe_docs.sources.targets import TargetError, find_mirror, load_catalog, parse_deb822, parse_one_line

DEB822 = """Types: deb
URIs: http://archive.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: sid
"""


def test_deb822_sources_give_archive_and_security() -> None:
    mirror = find_mirror(parse_deb822(DEB822))
    assert mirror.archive == "http://archive.example/debian"
    assert mirror.apt_lines(("trixie", "trixie-security")) == [
        "deb http://archive.example/debian trixie main",
        "deb http://security.example/debian-security trixie-security main",
    ]


def test_one_line_sources_with_options_and_comments() -> None:
    text = "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian/ bookworm main\n"
    text += "deb http://s.example/debian-security bookworm-security main # security\ndeb-src http://x y z\n"
    mirror = find_mirror(parse_one_line(text))
    assert (mirror.archive, mirror.security) == ("http://a.example/debian", "http://s.example/debian-security")


def test_no_debian_archive_is_a_clear_error() -> None:
    with pytest.raises(TargetError, match="no Debian archive found"):
        find_mirror(parse_one_line("deb https://deb.nodesource.example/node_20.x nodistro main\n"))


def test_catalog_groups_and_unknown_names() -> None:
    catalog = load_catalog()
    assert [t.name for t in catalog.select([])] == list(catalog.default)
    assert len(catalog.select(["all"])) == len(catalog.targets)
    with pytest.raises(TargetError, match="unknown target 'debian-hurd-i386'"):
        catalog.select(["debian-hurd-i386"])


def test_catalog_default_must_exist() -> None:
    with pytest.raises(TargetError, match="default target 'x' is not in the catalog"):
        load_catalog('default = ["x"]\n')


def test_kernel_image_found_in_old_and_split_packages() -> None:
    old = "-rw-r--r-- root/root   8405184 2025-05-20 10:00 ./boot/vmlinuz-6.1.0-56-amd64\n"
    split = "drwxr-xr-x root/root 0 2026-01-01 10:00 ./usr/lib/modules/7.2.13+deb14-amd64/\n"
    split += "-rw-r--r-- root/root 12000000 2026-01-01 10:00 ./usr/lib/modules/7.2.13+deb14-amd64/vmlinuz\n"
    assert image_in(old) == ("./boot/vmlinuz-6.1.0-56-amd64", "6.1.0-56-amd64")
    assert image_in(split) == ("./usr/lib/modules/7.2.13+deb14-amd64/vmlinuz", "7.2.13+deb14-amd64")
    assert image_in("-rw-r--r-- root/root 10 2026-01-01 10:00 ./usr/lib/modules/7.2/config\n") is None


def test_pin_must_be_one_of_the_suites() -> None:
    text = 'default = []\n[targets.x]\nrelease = "trixie"\nsuites = ["trixie"]\narch = "amd64"\n'
    text += 'flavour = "amd64"\npin = "trixie-backports"\n'
    with pytest.raises(TargetError, match="pin 'trixie-backports' is not one of its suites"):
        load_catalog(text)
