import ipaddress

import pytest

from vocabulary.subnets import LayoutError, carve, default_layout, overlaps


def test_default_layout_puts_large_private_subnets_first_then_public():
    layout = default_layout("10.0.0.0/16", 3, 19, 24)
    assert [p.private for p in layout] == ["10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"]
    assert [p.public for p in layout] == ["10.0.96.0/24", "10.0.97.0/24", "10.0.98.0/24"]


def test_layout_subnets_never_overlap():
    layout = default_layout("172.16.0.0/16", 6, 20, 24)
    named = [(f"p{i}", p.private) for i, p in enumerate(layout)]
    named += [(f"q{i}", p.public) for i, p in enumerate(layout)]
    assert overlaps(named) == []
    assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("172.16.0.0/16"))
               for _, c in named)


def test_carving_more_than_fits_names_the_sizes():
    with pytest.raises(LayoutError, match=r"9 x /19 subnets do not fit in 10.0.0.0/16"):
        carve("10.0.0.0/16", 9, 19)


def test_overlaps_names_both_sides():
    assert overlaps([("a", "10.0.0.0/16"), ("b", "10.0.5.0/24")]) == [
        "a 10.0.0.0/16 overlaps b 10.0.5.0/24"]
