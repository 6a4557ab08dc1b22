"""The subscription index: wildcard semantics, queue groups, cache coherence, and a model test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.sublist import Sublist, Subscription
from common.subjects import (
    is_valid_literal_subject,
    is_valid_subject,
    subject_matches,
    subjects_collide,
)


def names(result) -> set[bytes]:
    return {sub.sid for sub, _ in result.psubs} | {s.sid for g in result.qsubs for s in g}


@pytest.mark.parametrize("pattern,subject,expected", [
    (b"foo", b"foo", True),
    (b"foo", b"foo.bar", False),
    (b"foo.*", b"foo.bar", True),
    (b"foo.*", b"foo", False),
    (b"foo.*", b"foo.bar.baz", False),
    (b"foo.>", b"foo.bar.baz", True),
    (b"foo.>", b"foo", False),
    (b">", b"foo", True),
    (b">", b"foo.bar", True),
    (b"*", b"foo", True),
    (b"*", b"foo.bar", False),
    (b"*.bar.*", b"a.bar.c", True),
    (b"*.bar.*", b"a.baz.c", False),
    (b"a.*.>", b"a.b.c", True),
    (b"a.*.>", b"a.b", False),
])
def test_wildcard_semantics_in_matcher_and_index_agree(pattern, subject, expected):
    assert subject_matches(pattern, subject) is expected
    sublist = Sublist()
    sublist.insert(Subscription(pattern, b"1"))
    assert (len(sublist.match(subject)) == 1) is expected


@pytest.mark.parametrize("subject,valid", [
    (b"foo", True), (b"foo.bar", True), (b"foo.*", True), (b"foo.>", True), (b">", True),
    (b"*", True), (b"foo..bar", False), (b".foo", False), (b"foo.", False), (b"", False),
    (b"foo.>.bar", False), (b"fo o", False), (b"foo\tbar", False), (b"foo*.bar", True),
])
def test_subject_validation(subject, valid):
    assert is_valid_subject(subject) is valid


def test_literal_subjects_exclude_wildcard_tokens():
    assert is_valid_literal_subject(b"foo.bar")
    assert not is_valid_literal_subject(b"foo.*")
    assert not is_valid_literal_subject(b"foo.>")
    assert is_valid_literal_subject(b"foo*.bar>")  # wildcards only count as whole tokens


def test_subjects_collide_when_some_subject_matches_both():
    assert subjects_collide(b"foo.*", b"foo.bar")
    assert subjects_collide(b"foo.>", b"*.bar.baz")
    assert not subjects_collide(b"foo.*", b"bar.*")
    assert not subjects_collide(b"foo.*", b"foo.bar.baz")


def test_queue_groups_are_grouped_by_name_across_matching_nodes():
    sublist = Sublist()
    sublist.insert(Subscription(b"foo.*", b"1", queue=b"q"))
    sublist.insert(Subscription(b"foo.bar", b"2", queue=b"q"))
    sublist.insert(Subscription(b"foo.bar", b"3", queue=b"other"))
    sublist.insert(Subscription(b"foo.bar", b"4"))
    result = sublist.match(b"foo.bar")
    assert [sub.sid for sub, _ in result.psubs] == [b"4"]
    groups = sorted(sorted(s.sid for s in g) for g in result.qsubs)
    assert groups == [[b"1", b"2"], [b"3"]]


def test_a_subscription_matching_through_several_paths_is_returned_once():
    sublist = Sublist()
    sub = Subscription(b"foo.>", b"1")
    sublist.insert(sub)
    sublist.insert(Subscription(b"foo.*", b"2"))
    result = sublist.match(b"foo.bar")
    assert sorted(s.sid for s, _ in result.psubs) == [b"1", b"2"]


class Conn:
    """What the sublist needs of a connection: whether it leads to a peer server."""

    def __init__(self, is_route: bool = False) -> None:
        self.is_route = is_route


def test_match_results_carry_the_msg_line_start_for_the_published_subject():
    sublist = Sublist()
    sublist.insert(Subscription(b"foo.*", b"7", client=Conn()))
    sublist.insert(Subscription(b"foo.>", b"8", callback=lambda *a: None))  # internal: no line
    starts = {sub.sid: start for sub, start in sublist.match(b"foo.bar").psubs}
    assert starts == {b"7": b"MSG foo.bar 7 ", b"8": b""}


def test_a_peer_gets_one_routed_copy_however_many_of_its_subscriptions_match():
    sublist = Sublist()
    peer, other = Conn(is_route=True), Conn(is_route=True)
    for pattern in (b"foo.*", b"foo.>", b"foo.bar"):
        sublist.insert(Subscription(pattern, b"", client=peer))
    sublist.insert(Subscription(b">", b"", client=other))
    starts = [(sub.client, start) for sub, start in sublist.match(b"foo.bar").psubs]
    assert sorted(starts, key=lambda s: s[0] is other) == [
        (peer, b"RMSG $G foo.bar "), (other, b"RMSG $G foo.bar ")]


def test_the_line_to_a_peer_names_the_sublists_account():
    sublist = Sublist(account=b"ORDERS")
    sublist.insert(Subscription(b"foo.*", b"", client=Conn(is_route=True)))
    assert [start for _, start in sublist.match(b"foo.bar").psubs] == [b"RMSG ORDERS foo.bar "]


def test_a_peers_queue_interest_counts_as_many_members_as_its_weight():
    sublist = Sublist()
    local = Subscription(b"jobs", b"1", client=Conn(), queue=b"workers")
    remote = Subscription(b"jobs", b"", client=Conn(is_route=True), queue=b"workers")
    remote.weight = 3
    sublist.insert(local)
    sublist.insert(remote)
    (group,) = sublist.match(b"jobs").qsubs
    assert sorted(group, key=id) == sorted([local, remote, remote, remote], key=id)


def test_cache_is_updated_by_inserts_and_removes():
    sublist = Sublist()
    assert len(sublist.match(b"a.b")) == 0
    wild = Subscription(b"a.*", b"1")
    sublist.insert(wild)
    assert names(sublist.match(b"a.b")) == {b"1"}
    literal = Subscription(b"a.b", b"2")
    sublist.insert(literal)
    assert names(sublist.match(b"a.b")) == {b"1", b"2"}
    sublist.remove(wild)
    assert names(sublist.match(b"a.b")) == {b"2"}
    sublist.remove(literal)
    assert len(sublist.match(b"a.b")) == 0
    assert sublist.count == 0


def test_remove_prunes_the_trie_and_reports_unknown_subscriptions():
    sublist = Sublist()
    sub = Subscription(b"a.b.c", b"1")
    sublist.insert(sub)
    assert sublist.remove(sub)
    assert not sublist.remove(sub)
    assert sublist._root.is_empty()
    assert list(sublist) == []


def test_stats_count_inserts_removes_and_cache_hits():
    sublist = Sublist()
    sub = Subscription(b"x", b"1")
    sublist.insert(sub)
    sublist.match(b"x")
    sublist.match(b"x")
    stats = sublist.stats(matches=2)
    assert (stats.num_subscriptions, stats.num_inserts, stats.num_cache) == (1, 1, 1)
    assert stats.cache_hit_rate == 0.5
    assert stats.max_fanout == 1


@pytest.mark.parametrize("patterns,subject,expected", [
    # A `*` branch that ends early must not let a sibling branch shorten the shared prefix.
    ([b"a.a", b"*.a.a", b">"], b"a.a.a.a", {b">"}),
    ([b"a.a", b"*.a.a", b">"], b"a.a.a", {b"*.a.a", b">"}),
    ([b">", b"a.*"], b"a.b.c", {b">"}),
])
def test_subjects_sharing_a_prefix_result_match_like_a_fresh_index(patterns, subject, expected):
    """Server-side `>` matches are shared by every subject with the same first tokens; a probe of
    a shorter subject first must not poison a longer one, and the other way round."""
    sublist = Sublist()
    for pattern in patterns:
        sublist.insert(Subscription(pattern, pattern))
    shorter = subject.rsplit(b".", 1)[0]
    sublist.match(shorter)
    sublist.match(shorter + b".zz.zz")
    assert names(sublist.match(subject)) == expected


_tokens = st.sampled_from([b"a", b"b", b"c"])
_patterns = st.lists(st.one_of(_tokens, st.just(b"*")), min_size=1, max_size=3).flatmap(
    lambda toks: st.sampled_from([b".".join(toks), b".".join([*toks[:-1], b">"])]))
_subjects = st.lists(_tokens, min_size=1, max_size=4).map(b".".join)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), _patterns), max_size=30), st.lists(_subjects, max_size=10))
def test_index_agrees_with_a_brute_force_model(ops, probes):
    """Insert/remove in any order, with the cache in play: match equals filtering every sub."""
    sublist = Sublist()
    live: list[Subscription] = []
    for i, (insert, pattern) in enumerate(ops):
        if insert or not live:
            sub = Subscription(pattern, b"%d" % i)
            sublist.insert(sub)
            live.append(sub)
        else:
            sub = live.pop(i % len(live))
            assert sublist.remove(sub)
        for subject in probes:
            expected = {s.sid for s in live if subject_matches(s.subject, subject)}
            assert names(sublist.match(subject)) == expected
    assert sublist.count == len(live)
