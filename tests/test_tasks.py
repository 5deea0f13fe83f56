import pytest

from interp.errors import InterpError
from interp.tasks import ARITHMETIC, SPLITS, TASKS, make_examples, read_csv, split_of, validate, write_csv
from interp.tokenizer import number_token_id


@pytest.mark.parametrize("task", ARITHMETIC)
def test_triples_valid(task, tok):
    exs = make_examples(task, "train", 300, seed=1)
    validate(exs, tok)
    for e in exs:
        assert len(tok(e.clean)["input_ids"]) == len(tok(e.corrupted)["input_ids"])
        assert e.clean != e.corrupted
        number_token_id(e.label)


@pytest.mark.parametrize("task", list(TASKS))
def test_splits_disjoint_and_deterministic(task):
    sets = {s: {e.clean for e in make_examples(task, s, 150)} for s in SPLITS}
    assert not sets["train"] & sets["test"] and not sets["train"] & sets["circuit"] and not sets["circuit"] & sets["test"]
    assert make_examples(task, "test", 50, seed=3) == make_examples(task, "test", 50, seed=3)
    assert make_examples(task, "test", 50, seed=3) != make_examples(task, "test", 50, seed=4)
    assert all(split_of(c) == "test" for c in sets["test"])


def test_labels_are_correct():
    e = make_examples("add_sub", "test", 50)
    for ex in e:
        a, op, b = ex.clean.split()[-4:-1]
        assert ex.label == (int(a) + int(b) if op == "+" else int(a) - int(b))


def test_csv_round_trip(tmp_path):
    exs = make_examples("lcm", "circuit", 40)
    path = write_csv(exs, tmp_path / "lcm.csv")
    assert read_csv(path) == exs


@pytest.mark.parametrize("row,msg", [
    ('"1 + 2 =","1 - 2 =",1000', "cannot be written with this tokenizer"),
    ('"1 + 2 =","1 - 2 - 2 =",3', "tokens but corrupted has"),
    ('"1 + 2 =","1 - 2 =",bananas', "cannot be written with this tokenizer"),
    ('"1 + 2 = banana","1 - 2 = banana",3', "outside the vocabulary"),
])
def test_malformed_row_names_the_row(tmp_path, row, msg):
    path = tmp_path / "bad.csv"
    path.write_text('clean,corrupted,label\n"3 + 4 =","3 - 4 =",7\n' + row + "\n")
    with pytest.raises(InterpError, match=f"row 2: .*{msg}"):
        read_csv(path)


def test_bad_header_and_unknown_task(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InterpError, match="header"):
        read_csv(path)
    with pytest.raises(InterpError, match="unknown task"):
        make_examples("nope")
    with pytest.raises(InterpError, match="unknown split"):
        make_examples("add_sub", "dev")
