"""Config loading: defaults, YAML, overrides, and that every problem is reported at once with its fix."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from pydantic import ValidationError

from higgs_tune.config import (
    DpoSettings,
    LoraSettings,
    PromptSettings,
    TrainSettings,
    metric_greater_is_better,
    resolve_codebook_weights,
)
from higgs_tune.config_files import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    require,
    save_config,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def problems_of(overrides: list[str], yaml_path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(TrainSettings, yaml_path, overrides)
    return info.value.problems


def test_defaults_are_valid() -> None:
    cfg = load_config(TrainSettings, None, [])
    assert cfg == TrainSettings()
    assert cfg.lora == LoraSettings()
    assert cfg.prompt == PromptSettings()
    assert cfg.bf16 == "auto"
    assert "audio_lm_head" not in cfg.lora.target_modules
    assert config_from_dict(TrainSettings, {}) == TrainSettings()


def test_yaml_load_with_nested_sections(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: some/model\n"
        "learning_rate: 2e-4\n"  # plain PyYAML would read this as a string
        "max_steps: 50\n"
        "warmup_steps: 5\n"
        "codebook_weights: [2, 1, 1, 1, 1, 1, 1, 0.5]\n"
        "lora:\n  r: 8\n  target_modules: [q_proj, v_proj]\n"
        "prompt:\n"  # a section with everything commented out is empty, not an error
        "  # scene: studio\n"
    )
    cfg = load_config(TrainSettings, path, [])
    assert cfg.model == "some/model"
    assert cfg.learning_rate == pytest.approx(2e-4)
    assert cfg.codebook_weights == [2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5]
    assert all(type(w) is float for w in cfg.codebook_weights)
    assert cfg.lora == LoraSettings(r=8, target_modules=["q_proj", "v_proj"])
    assert cfg.prompt == PromptSettings()


def test_overrides_win_over_yaml_and_parse_as_yaml_scalars(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("learning_rate: 0.001\nlora:\n  r: 8\n  alpha: 16\n")
    cfg = load_config(
        TrainSettings,
        path,
        [
            "learning_rate=1e-4",
            "lora.r=32",
            "lora.target_modules=[q_proj,v_proj]",
            "bf16=true",
            "gradient_checkpointing=yes",
            "max_grad_norm=2",  # int accepted for a float field
            "save_total_limit=null",
            "codebook_weights=[1, 1, 1, 1, 1, 1, 1, 1]",
            "prompt.system_prompt=Speak slowly.",
            "prompt.scene=Note: a quiet room",  # YAML would read a mapping; string fields keep the text
            "output_dir=2024",  # likewise a number in YAML, but a directory name here
            "seed=1",
            "seed=7",  # the last override for a key wins
        ],
    )
    assert cfg.learning_rate == pytest.approx(1e-4)
    assert cfg.lora.r == 32
    assert cfg.lora.alpha == 16  # untouched YAML keys in the same section survive
    assert cfg.lora.target_modules == ["q_proj", "v_proj"]
    assert cfg.bf16 is True
    assert cfg.gradient_checkpointing is True
    assert cfg.max_grad_norm == 2.0 and type(cfg.max_grad_norm) is float
    assert cfg.save_total_limit is None
    assert cfg.codebook_weights == [1.0] * 8
    assert cfg.prompt.system_prompt == "Speak slowly."
    assert cfg.prompt.scene == "Note: a quiet room"
    assert cfg.output_dir == "2024"
    assert cfg.seed == 7


def test_section_override_merges_into_the_section() -> None:
    cfg = load_config(
        TrainSettings, None, ["lora.r=4", "lora={alpha: 8, dropout: 0}", "lora.train_audio_head=true"]
    )
    assert cfg.lora == LoraSettings(r=4, alpha=8, dropout=0.0, train_audio_head=True)


def test_train_by_epochs() -> None:
    cfg = load_config(TrainSettings, None, ["max_steps=null", "num_train_epochs=3"])
    assert cfg.max_steps is None and cfg.num_train_epochs == 3.0


@pytest.mark.parametrize(
    ("args", "counted"),
    [
        (["max_steps=20", "learning_rate=abc"], "config + 2 overrides: 1 problem"),
        (["--full", "learning_rate=abc"], "config + 1 override: 1 problem"),
    ],
)
def test_the_override_count_is_the_users_key_value_overrides_only(run_cli, tmp_path, args, counted) -> None:
    """`train`'s own options (--model, --data, --out, --full) reach the config as settings too; they used
    to be counted, so two overrides read "config + 5 overrides"."""
    paths = ["--model", tmp_path / "m", "--data", tmp_path / "d", "--out", tmp_path / "r"]
    code, _, err = run_cli("train", *paths, *args)
    assert code == 2 and counted in err and "learning_rate must be a number" in err, err


def test_train_options_are_values_not_yaml(
    run_cli, tiny_model_dir, prepared_dir, tmp_path, monkeypatch
) -> None:
    """`--out null` is a folder named null and `--data '~'` a path named ~: the command's typed options used
    to become key=value text, which YAML read as None ("output_dir is required")."""
    monkeypatch.chdir(tmp_path)
    steps = [
        "max_steps=1",
        "warmup_steps=0",
        "save_steps=1",
        "per_device_train_batch_size=2",
        "eval_fraction=0",
    ]
    code, _, err = run_cli(
        "train", "--model", tiny_model_dir, "--data", prepared_dir, "--out", "null", *steps
    )
    assert code == 0, err
    assert (tmp_path / "null" / "checkpoint-1").is_dir()
    code, _, err = run_cli("train", "--model", tiny_model_dir, "--data", "~", "--out", "run", *steps)
    assert code == 2 and "is required" not in err and "~" in err, err


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("learing_rate=1e-4", "unknown key 'learing_rate' (did you mean 'learning_rate'?)"),
        ("lora.rr=8", "unknown key 'lora.rr' (did you mean 'lora.r'?)"),
        ("lorra.r=8", "unknown key 'lorra' (did you mean 'lora'?)"),
        ("system_prompt=hi", "unknown key 'system_prompt' (did you mean 'prompt.system_prompt'?)"),
    ],
)
def test_unknown_key_suggests_the_fix(override: str, expected: str) -> None:
    assert problems_of([override]) == [expected]


def test_unknown_key_without_a_near_match_lists_the_valid_keys() -> None:
    (problem,) = problems_of(["prompt.zzz=1"])
    assert (
        problem
        == "unknown key 'prompt.zzz' (valid keys here: system_prompt, scene, text_normalisation, preset)"
    )


def test_all_problems_are_reported_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("learing_rate: 1e-4\nper_device_train_batch_size: 0\nlora:\n  r: abc\n")
    with pytest.raises(ConfigError) as info:
        load_config(
            TrainSettings,
            path,
            [
                "lr_scheduler_type=cosin",
                "warmup_steps=500",
                "codebook_weights=[1, -1]",
                "eval_fraction=1",
                "oops",
            ],
        )
    message = str(info.value)
    expected = [
        "unknown key 'learing_rate' (did you mean 'learning_rate'?)",
        "per_device_train_batch_size must be >= 1, got 0",
        "lora.r must be an integer, got 'abc'",
        "lr_scheduler_type must be one of 'cosine', 'constant', 'linear', got 'cosin'"
        " (did you mean 'cosine'?)",
        "warmup_steps (500) must be <= max_steps (200)",
        "codebook_weights must all be >= 0, got -1.0 at index 1",
        "eval_fraction must be >= 0 and < 1, got 1",  # as given
        "override 'oops' is not key=value",
    ]
    for text in expected:
        assert text in message
    assert len(info.value.problems) == len(expected)
    assert message.startswith(f"{path} + 5 overrides: 8 problems:")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("max_steps=ten", "max_steps must be an integer, or null, got 'ten'"),
        ("max_steps=1.5", "max_steps must be an integer, or null, got 1.5"),
        ("learning_rate=true", "learning_rate must be a number, got true"),  # bools are not numbers
        ("full=1", "full must be true or false, got 1"),
        ("bf16=maybe", "bf16 must be true or false, or 'auto', got 'maybe'"),
        ("lora.target_modules=q_proj", "lora.target_modules must be a list of strings, got 'q_proj'"),
        ("codebook_weights=[1, x]", "codebook_weights must be a list of numbers, or null, got [1, 'x']"),
        ("optim=adam", "optim must be one of 'adamw_torch', 'adamw_8bit', 'paged_adamw_8bit', got 'adam'"),
        ("prompt=5", "section 'prompt' must be a mapping of keys to values, got 5"),
    ],
)
def test_type_errors_name_the_expected_type(override: str, expected: str) -> None:
    assert problems_of([override]) == [expected]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["max_steps=null"], "set max_steps or num_train_epochs to say how long to train"),
        (["num_train_epochs=2"], "set max_steps=null to train by epochs, or drop num_train_epochs"),
        (["max_tokens_per_batch=1000"], "max_tokens_per_batch (1000) must be >= max_seq_len (4096)"),
        (["codebook_weights=[]"], "codebook_weights is empty; use null to weigh all codebooks equally"),
        (["codebook_weights=[0, 0]"], "codebook_weights are all 0, so nothing would be trained"),
        (["lora.target_modules=[]"], "lora.target_modules must name at least one module"),
        (["seed=-1"], "seed must be >= 0 and < 4294967296, got -1"),
        (["save_steps=0"], "save_steps must be >= 1, got 0"),
        (["adam_beta2=.nan"], "adam_beta2 must be a finite number, got nan"),
        (["learning_rate=.inf"], "learning_rate must be a finite number, got inf"),
        (["max_steps=null", "num_train_epochs=-.inf"], "num_train_epochs must be a finite number, got -inf"),
        (["codebook_weights=[1, .inf]"], "codebook_weights must be finite numbers, got [1, inf]"),
    ],
)
def test_range_and_cross_field_checks(overrides: list[str], expected: str) -> None:
    (problem,) = problems_of(overrides)
    assert expected in problem


def test_file_problems(tmp_path: Path) -> None:
    assert problems_of([], tmp_path / "missing.yaml")[0].startswith("cannot read config file")
    broken = tmp_path / "broken.yaml"
    broken.write_text("lora: [unclosed\n")
    assert problems_of([], broken)[0].startswith("not valid YAML")
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert problems_of([], listing) == ["the file must hold a mapping of keys to values, got ['a', 'b']"]


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    cfg = load_config(
        TrainSettings,
        None,
        [
            "model=m",
            "full=true",
            "learning_rate=3e-5",
            "bf16=false",
            "codebook_weights=[1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 0.25]",
            "prompt.scene=1e-4",  # a string that looks like a number must stay a string
            "prompt.system_prompt=Stimme: ruhig, klar",
            "lora.target_modules=[q_proj]",
        ],
    )
    path = tmp_path / "ckpt" / "config.yaml"
    save_config(cfg, path)
    assert load_config(TrainSettings, path, []) == cfg
    assert config_from_dict(TrainSettings, config_to_dict(cfg)) == cfg
    assert list(config_to_dict(cfg))[:3] == ["model", "data", "output_dir"]  # saved in field order


SAVED = Path(__file__).resolve().parent / "data" / "saved_configs"
# The lines of run-config fields newer than config-0.1.0.yaml, each saved at its default.
ADDED_SINCE_0_1_0 = ("torch_compile: false\n", "  preset: original\n")


def test_a_config_saved_by_an_earlier_version_loads_with_its_values(tmp_path: Path) -> None:
    """config-0.1.0.yaml was written by save_config of higgs-tune 0.1.0 (the hand-written loader), with
    non-default values in every section; it loads into today's settings unchanged and saves the same text,
    plus the fields added since."""
    path = SAVED / "config-0.1.0.yaml"
    cfg = load_config(TrainSettings, path, [])
    assert cfg == TrainSettings(
        model="bosonai/higgs-audio-v2-generation-3B-base",
        data="data/prepared",
        output_dir="runs/voice-1",
        max_steps=None,
        num_train_epochs=2.5,
        learning_rate=2e-4,
        weight_decay=0.01,
        warmup_steps=20,
        lr_scheduler_type="linear",
        min_lr_ratio=0.0,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=4,
        save_total_limit=None,
        metric_for_best_model="eval_accuracy_codebook_0",
        early_stopping_patience=3,
        early_stopping_threshold=0.001,
        seed=7,
        bf16=False,
        gradient_checkpointing=True,
        text_loss_weight=0.5,
        codebook_weights=[2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
        max_tokens_per_batch=8192,
        optim="adamw_8bit",
        report_to=["tensorboard", "wandb"],
        fast_dual_ffn=False,
        preview_steps=50,
        prompt=PromptSettings(
            system_prompt="Stimme: ruhig, klar", scene=None, text_normalisation="arabic_spoken"
        ),
        lora=LoraSettings(
            r=8, alpha=16, dropout=0.1, target_modules=["q_proj", "v_proj"], train_audio_head=True
        ),
        dpo=DpoSettings(beta=0.2, sft_weight=0.5, disable_dropout=False),
    )
    save_config(cfg, tmp_path / "config.yaml")
    saved = (tmp_path / "config.yaml").read_text(encoding="utf-8").splitlines(keepends=True)
    # Fields added since 0.1.0 are saved at their defaults; apart from them, the same text.
    added_since = sorted(ADDED_SINCE_0_1_0)
    assert sorted(line for line in saved if line in added_since) == added_since
    assert "".join(line for line in saved if line not in added_since) == path.read_text(encoding="utf-8")


def test_config_from_dict_validates_like_the_loader() -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(TrainSettings, {"lora": {"r": 0, "bad": 1}, "max_steps": "x"})
    assert info.value.problems == [  # in field order, unknown keys last
        "max_steps must be an integer, or null, got 'x'",
        "lora.r must be >= 1, got 0",
        "unknown key 'lora.bad' (valid keys here: r, alpha, dropout, target_modules, train_audio_head)",
    ]


def test_configs_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainSettings().learning_rate = 1.0  # type: ignore[misc]


def test_settings_built_in_code_are_checked_too() -> None:
    """The models check what code builds or replaces, not only what the loader reads."""
    with pytest.raises(ValidationError, match="warmup_steps \\(500\\) must be <= max_steps \\(200\\)"):
        dataclasses.replace(TrainSettings(), warmup_steps=500)
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        LoraSettings(r=0)
    assert TrainSettings(lora={"r": 4}).lora == LoraSettings(r=4)


def test_require_names_every_missing_key() -> None:
    cfg = TrainSettings(model="m", prompt=PromptSettings(scene=None))
    require(cfg, "model", "prompt.system_prompt")
    with pytest.raises(ConfigError) as info:
        require(cfg, "model", "data", "output_dir", "prompt.scene")
    assert info.value.problems == [
        "data is required: set it in the config file or pass data=...",
        "output_dir is required: set it in the config file or pass output_dir=...",
        "prompt.scene is required: set it in the config file or pass prompt.scene=...",
    ]


def test_a_bad_metric_for_best_model_lists_the_valid_ones_with_every_other_problem() -> None:
    problems = problems_of(
        ["metric_for_best_model=eval_los", "early_stopping_patience=0", "eval_fraction=0", "max_steps=0"]
    )
    assert sorted(problems) == [
        "early_stopping_patience must be >= 1, got 0",
        "max_steps must be >= 1, got 0",
        "metric_for_best_model: unknown metric 'eval_los'; valid metrics: eval_loss, eval_accuracy, "
        "eval_eos_prob, eval_early_stop_risk, eval_accuracy_codebook_<k>, eval_eos_prob_codebook_<k>, "
        "eval_reward_accuracy, eval_reward_margin",
    ]
    (problem,) = problems_of(["early_stopping_patience=3", "eval_fraction=0"])
    assert "early_stopping_patience needs held-out evaluations, but eval_fraction is 0" in problem


@pytest.mark.parametrize(
    ("metric", "greater"),
    [
        ("eval_loss", False),
        ("eval_early_stop_risk", False),
        ("eval_accuracy", True),
        ("eval_eos_prob", True),
        ("eval_eos_prob_codebook_3", True),
        ("eval_accuracy_codebook_0", True),
    ],
)
def test_best_model_metrics_and_their_direction(metric: str, greater: bool) -> None:
    cfg = load_config(TrainSettings, None, [f"metric_for_best_model={metric}", "early_stopping_patience=2"])
    assert metric_greater_is_better(cfg) is greater
    flipped = load_config(
        TrainSettings, None, [f"metric_for_best_model={metric}", f"greater_is_better={not greater}"]
    )
    assert metric_greater_is_better(flipped) is not greater


def test_best_model_defaults_follow_transformers() -> None:
    cfg = TrainSettings()
    assert cfg.metric_for_best_model == "eval_loss" and cfg.greater_is_better is None
    assert cfg.early_stopping_patience is None and cfg.early_stopping_threshold == 0.0


def test_resolve_codebook_weights() -> None:
    assert resolve_codebook_weights(None, 2) == [1.0, 1.0]
    assert resolve_codebook_weights([2, 1], 2) == [2.0, 1.0]
    with pytest.raises(ConfigError, match="codebook_weights has 8 values but the model has 2 codebooks"):
        resolve_codebook_weights([1.0] * 8, 2)


@pytest.mark.parametrize("name", ["lora.yaml", "full.yaml"])
def test_example_configs_load(name: str) -> None:
    cfg = load_config(TrainSettings, CONFIGS / name, ["data=some/data"])
    assert cfg.full is (name == "full.yaml")
    assert cfg.model and cfg.output_dir
    require(cfg, "model", "data", "output_dir")
