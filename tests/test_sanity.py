"""The sanity tasks (tasks.sanity) and their command (bench.sanity): the data is what each task says
it is, the same on every call; the table of checks matches the tasks; bad command lines end in one
sentence; in the slow tier, the seq2seq baseline passes the copy check; and in the sanity tier
(`python -m pytest -m sanity`, about an hour on one core), every compared family passes every check of
its modalities."""

from __future__ import annotations

import pytest
import torch

from bench.core.config import DataConfig
from bench.models import compared_families
from bench.sanity import CHECKS, Check, judge, main
from bench.core.spec import MODALITIES
from tasks import create_task, list_tasks
from tasks.sanity import CONSONANTS, MEMORIZE_IMAGES, MEMORIZE_PAIRS, VOWELS, pseudo_words
from tasks.text import IGNORE

SANITY_TASKS = ("copy", "reverse", "memorize-pairs", "memorize-digits", "motif")


@pytest.fixture(autouse=True)
def tokenizer_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MLPBENCH_CACHE", str(tmp_path_factory.getbasetemp() / "sanity-cache"))


def data_cfg(task: str, **given) -> DataConfig:
    """The data settings the sanity check runs the task with."""
    check = CHECKS.get(task)
    return DataConfig(**({"seq_len": check.seq_len} if check.seq_len else {}), **given)


def test_every_sanity_task_is_registered_offline_and_checked():
    assert set(SANITY_TASKS) <= set(list_tasks())
    assert all(create_task(name).offline for name in SANITY_TASKS)
    assert CHECKS.names() == sorted(SANITY_TASKS)
    for name in SANITY_TASKS:
        check = CHECKS.get(name)
        assert check.task == name and check.why
        assert check.eval_every < check.steps, "the curve has points before the end"


def test_pseudo_words_are_fixed_distinct_syllables():
    words = pseudo_words()
    assert words == pseudo_words() and len(set(words)) == len(words) == 1500
    for word in words:
        assert 4 <= len(word) <= 6 and len(word) % 2 == 0
        assert all(c in CONSONANTS for c in word[::2]) and all(v in VOWELS for v in word[1::2])


@pytest.mark.parametrize("name", ["copy", "reverse", "memorize-pairs", "motif"])
def test_text_sources_are_the_same_on_every_call(name):
    task = create_task(name)
    assert task.default_source(data_cfg(name)) == create_task(name).default_source(data_cfg(name))


@pytest.mark.parametrize("name, target", [("copy", lambda words: words), ("reverse", lambda words: words[::-1])])
def test_copy_and_reverse_targets_are_the_source_words(name, target):
    pairs, held = create_task(name).default_source(data_cfg(name))
    assert held is None and len(pairs) == 20_000 and len({s for s, _ in pairs}) == 20_000
    for source, reference in pairs:
        assert 5 <= len(source.split()) <= 20
        assert reference.split() == target(source.split())


@pytest.mark.parametrize("eval_split", ["test", "validation"])
def test_memorize_pairs_scores_its_training_pairs(eval_split):
    data = create_task("memorize-pairs").load(data_cfg("memorize-pairs", eval_split=eval_split), seed=0)
    assert len(data.train) == len(data.eval) == MEMORIZE_PAIRS
    assert data.train[:] == data.eval[:]
    assert len(set(data.extra["sources"])) == MEMORIZE_PAIRS


@pytest.mark.parametrize("eval_split", ["test", "validation"])
def test_memorize_digits_scores_its_training_images_whose_labels_are_random(eval_split):
    from sklearn.datasets import load_digits

    data = create_task("memorize-digits").load(data_cfg("memorize-digits", eval_split=eval_split), seed=0)
    assert len(data.train) == len(data.eval) == MEMORIZE_IMAGES
    train, scored = data.train[:], data.eval[:]
    assert torch.equal(train[0], scored[0]) and torch.equal(train[1], scored[1])
    # each image's true digit: its row in scikit-learn's set, the one its pixels correlate with fully
    def centred(x):
        return x.flatten(1) - x.flatten(1).mean(1, keepdim=True)

    digits = centred(torch.tensor(load_digits().images, dtype=torch.float32))
    found = torch.cosine_similarity(digits[None], centred(train[0])[:, None], dim=-1).argmax(1)  # (256,)
    agree = (torch.tensor(load_digits().target)[found] == train[1]).float().mean().item()
    assert agree < 0.2, f"labels agree with the digits {agree:.0%} of the time: they are not random"


def periods(block: list[int]) -> int:
    """The smallest period of a block's body (between [CLS] and [SEP])."""
    body = block[1:-1]
    return next(p for p in range(1, len(body) + 1) if all(body[i] == body[i + p] for i in range(len(body) - p)))


def test_every_masked_motif_token_is_a_visible_neighbours_one_period_away():
    data = create_task("motif").load(data_cfg("motif"), seed=0)
    masked = determined = 0
    for row in data.eval:
        ids, labels = row["input_ids"], row["labels"]
        original = [label if label != IGNORE else token for token, label in zip(ids, labels)]
        period = periods(original)
        assert 3 <= period <= 6 and len(original) == 32, "one token per word, each motif repeated over the block"
        for i, label in enumerate(labels):
            if label == IGNORE:
                continue
            masked += 1
            copies = range(1 + (i - 1) % period, len(ids) - 1, period)
            determined += any(ids[j] == label for j in copies if j != i)
    assert masked > 1000 and determined / masked > 0.999, f"{masked - determined} of {masked} masked tokens undetermined"


def fake_outputs(task, data) -> dict[str, torch.Tensor]:
    """Evaluation outputs of a model that is always right (seq2seq, images) or always wrong (mlm)."""
    spec = data.spec
    if spec.modality == "seq2seq":
        labels = [row["labels"] for row in data.eval]
        generated = torch.full((len(labels), spec.target_len), spec.pad_token_id)
        for i, row in enumerate(labels):
            generated[i, : len(row)] = torch.tensor(row)
        return {"loss_sum": torch.ones(len(labels)), "tokens": torch.ones(len(labels)), "generated": generated,
                "index": torch.tensor([row["index"] for row in data.eval])}
    if spec.modality == "image":
        labels = data.eval[:][1]
        return {"top1": torch.ones(len(labels)), "top5": torch.ones(len(labels)), "loss": torch.zeros(len(labels)),
                "label": labels}
    ones = torch.ones(len(data.eval))
    return {"loss_sum": ones, "masked": ones, "correct": torch.zeros(len(data.eval))}


# the floor each task gives, and its range: copying is the solution of copy, and near worthless elsewhere
FLOORS = {
    "copy": ("floor_copy_bleu", 100.0, 100.0),
    "reverse": ("floor_copy_bleu", 0.0, 15.0),
    "memorize-pairs": ("floor_copy_bleu", 0.0, 2.0),
    "memorize-digits": ("majority_baseline_accuracy", 0.1, 0.2),
    "motif": ("majority_baseline_accuracy", 0.0, 0.02),
}


@pytest.mark.parametrize("name", SANITY_TASKS)
def test_each_task_gives_its_floor_and_the_metric_its_check_reads(name):
    task = create_task(name)
    data = task.load(data_cfg(name, max_eval_samples=200), seed=0)
    metrics = task.compute_metrics(fake_outputs(task, data), data)
    floor, low, high = FLOORS[name]
    assert low <= round(metrics[floor], 6) <= high, (floor, metrics[floor])
    check = CHECKS.get(name)
    best = 0.0 if data.spec.modality == "mlm" else (100.0 if check.metric == "bleu" else 1.0)
    assert metrics[check.metric] == pytest.approx(best)


def test_a_pair_passes_at_its_threshold_and_is_reached_at_the_first_step_over_it():
    check = Check("copy", "bleu", 90.0, 300, 100, 1e-3, why="test")
    curve = [{"step": 100, "metrics": {"bleu": 40.0}}, {"step": 200, "metrics": {"bleu": 90.0}},
             {"step": 300, "metrics": {"bleu": 89.0}}]
    result = {"status": "ok", "metrics": {"bleu": 89.0}, "history": curve}
    outcome = judge("gmlp", check, result)
    assert (outcome.reached, outcome.passed) == (200, False), "the final score decides, the curve says when"
    assert judge("gmlp", check, {**result, "metrics": {"bleu": 90.0}}).passed
    assert not judge("gmlp", check, {**result, "status": "diverged", "metrics": {"bleu": 95.0}}).passed
    assert not judge("gmlp", check, None).passed


@pytest.mark.parametrize("argv, sentence", [
    (["--model", "nosuch"], "error: Unknown model 'nosuch'; valid models are: "),
    (["--task", "digits"], "error: Unknown sanity task 'digits'; valid sanity tasks are: copy, memorize-digits, "
                           "memorize-pairs, motif, reverse."),
    (["--model", "vit", "--task", "copy"], "error: No pair of --model vit and the sanity tasks copy can run."),
])
def test_bad_command_lines_end_in_one_sentence(argv, sentence, tmp_path, capsys):
    assert main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(sentence) and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


FAMILIES = sorted({family for modality in MODALITIES for family in compared_families(modality)})


@pytest.mark.slow
def test_the_seq2seq_baseline_copies_its_input_within_the_budget(tmp_path, capsys):
    """The check that the baselines' old initialisation (std 0.02 at width 128) failed: BLEU 0 after 400 steps."""
    code = main(["--model", "transformer", "--task", "copy", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0 and any(line.split()[:2] == ["transformer", "copy"] and line.split()[-1] == "pass"
                            for line in out.splitlines() if line.strip()), out


# Known failures of the whole check (python -m bench.sanity at a8e398a, docs/sanity.md): strict, so that a
# family that starts passing says so.
KNOWN_FAILURES = {
    "gmlp": "gMLP fails reverse: its validation BLEU peaks at 77.4 at step 600 of 1,200, then falls to 66 while its "
            "validation loss keeps falling (greedy decoding misses single positions counted from the end, "
            "docs/sanity.md)",
}


@pytest.mark.sanity
@pytest.mark.parametrize("family", [
    pytest.param(family, marks=pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[family]))
    if family in KNOWN_FAILURES else family for family in FAMILIES
])
def test_every_family_passes_every_sanity_check_of_its_modalities(family, tmp_path, capsys):
    code = main(["--model", family, "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line for line in out.splitlines() if line.split()[:1] == [family]]
    expected = [name for name in CHECKS.names()
                if family in compared_families(create_task(name).spec(data_cfg(name)).modality)]
    assert [row.split()[1] for row in rows] == expected and all(row.endswith("pass") for row in rows), out
