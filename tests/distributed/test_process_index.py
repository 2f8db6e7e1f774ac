"""Which process this is, from TensorFlow's TF_CONFIG: the chief first, then the workers."""

import json

import pytest

import edgeprune as ep


@pytest.mark.parametrize("task, expected", [
    ({"type": "chief", "index": 0}, (0, 3, True)),
    ({"type": "worker", "index": 1}, (2, 3, False)),
])
def test_process_index_from_tf_config(monkeypatch, task, expected):
    cluster = {"chief": ["a:1"], "worker": ["b:1", "c:1"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))
    assert (ep.process_index(), ep.process_count(), ep.is_first_process()) == expected


def test_one_process_without_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert (ep.process_index(), ep.process_count(), ep.is_first_process()) == (0, 1, True)
