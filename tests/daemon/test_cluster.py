"""Where a process stands in a cluster: from the command line, or from Bytewax's variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.cluster import Member, free_addresses


def test_a_member_is_an_index_of_the_addresses() -> None:
    member = Member.parse(1, "a:2101; b:2101;")
    assert (member.process_id, member.addresses, member.first) == (1, ("a:2101", "b:2101"), False)
    assert Member.parse(0, "a:1").first
    with pytest.raises(ValueError, match="process id 2 is not an index of the 2 addresses"):
        Member.parse(2, "a:1;b:1")


def test_bytewax_variables_place_a_process(tmp_path: Path) -> None:
    assert Member.from_env({}) is None
    assert Member.from_env({"BYTEWAX_PROCESS_ID": "1", "BYTEWAX_ADDRESSES": "h0:9;h1:9"}) == Member(1, ("h0:9", "h1:9"))
    hosts = tmp_path / "hosts"
    hosts.write_text("hw-0.hw:2101\nhw-1.hw:2101\nhw-2.hw:2101\n")
    pod = {"BYTEWAX_POD_NAME": "hw-2", "BYTEWAX_STATEFULSET_NAME": "hw", "BYTEWAX_HOSTFILE_PATH": str(hosts)}
    assert Member.from_env(pod) == Member(2, ("hw-0.hw:2101", "hw-1.hw:2101", "hw-2.hw:2101"))
    with pytest.raises(ValueError, match="neither BYTEWAX_ADDRESSES nor BYTEWAX_HOSTFILE_PATH"):
        Member.from_env({"BYTEWAX_PROCESS_ID": "0"})


def test_free_addresses_are_distinct_local_ports() -> None:
    addresses = free_addresses(3)
    assert len(set(addresses)) == 3
    assert all(a.startswith("127.0.0.1:") and int(a.rsplit(":", 1)[1]) > 0 for a in addresses)


def test_live_refresh_is_refused_in_a_cluster_before_anything_starts(tmp_path: Path) -> None:
    """A live fork serves from the memory of the process that trains it: the other processes could
    not serve it, so a cluster refuses it, naming the setting (nothing reaches the broker: there is none)."""
    from daemon.config import ConfigError, load_settings
    from daemon.runner import run_daemon

    settings = load_settings(
        None, kafka={"bootstrap_servers": "127.0.0.1:1"}, schema={"features": ["x"], "classes": [0, 1]},
        promotion={"live_refresh": True}, registry={"path": str(tmp_path / "registry")},
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"promotion\.live_refresh serves the refresh fork"):
        run_daemon(settings, member=Member(1, ("127.0.0.1:1", "127.0.0.1:2")))


def test_in_a_cluster_the_default_portfolio_learns_in_shadow_and_an_explicit_vote_is_refused(tmp_path: Path) -> None:
    """The vote serves from the training process's lanes: ``auto`` turns it off in a cluster (the
    candidates keep learning, in shadow), ``true`` is refused before anything starts."""
    from daemon.config import ConfigError, load_settings
    from daemon.runner import for_processes, run_daemon

    base = {"kafka": {"bootstrap_servers": "127.0.0.1:1"}, "schema": {"features": ["x"], "classes": [0, 1]},
            "registry": {"path": str(tmp_path / "registry")}}  # fmt: skip
    settings = load_settings(None, **base)
    assert settings.voting()
    assert for_processes(settings, 1) is settings
    apart = for_processes(settings, 2)
    assert not apart.voting() and apart.flow_config().vote is None
    assert [c.name for c in apart.model.candidates] == [c.name for c in settings.model.candidates]
    explicit = load_settings(None, **base, model={"vote": {"enabled": True}})
    assert for_processes(explicit, 2).voting()
    with pytest.raises(ConfigError, match=r"model\.vote serves from the memory of the process that trains"):
        run_daemon(explicit, member=Member(1, ("127.0.0.1:1", "127.0.0.1:2")))
