"""The canary analysis' time-per-token query reads whichever engine serves the model: TGI's
histogram or vLLM's, evaluated by promtool on series shaped as each engine exports them."""

from __future__ import annotations

import yaml

from serving.release.signals import queries


def _series(metric: str, model: str, job: str, per_track: dict[str, float]) -> list[dict]:
    """A histogram's _sum and _count per track: 60 requests a minute at `seconds` per token."""
    out = []
    for track, seconds in per_track.items():
        labels = f'job="{job}",model="{model}",track="{track}"'
        out.append({"series": f"{metric}_count{{{labels}}}", "values": "0+60x20"})
        out.append({"series": f"{metric}_sum{{{labels}}}", "values": f"0+{60 * seconds}x20"})
    return out


def _evaluate(promtool, tmp_path, model: str, series: list[dict], expected: dict[str, float]):
    (tmp_path / "none.yaml").write_text("groups: []\n")
    test = {"rule_files": ["none.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{
            "expr": f'round(1000 * ({queries(model, "10m")["time_per_token_s"]}))', "eval_time": "15m",
            "exp_samples": [{"labels": f'{{track="{t}"}}', "value": v} for t, v in expected.items()]}]}]}
    (tmp_path / "signals.test.yaml").write_text(yaml.safe_dump(test))
    return promtool("test", "rules", "signals.test.yaml", cwd=tmp_path)


def test_a_vllm_model_s_time_per_token_comes_from_vllm_s_histogram(promtool, tmp_path):
    series = _series("vllm:request_time_per_output_token_seconds", "qwen", "vllm",
                     {"stable": 0.02, "canary": 0.05})
    # another model on TGI in the same Prometheus does not leak in
    series += _series("tgi_request_mean_time_per_token_duration", "llama", "tgi", {"stable": 0.9})
    result = _evaluate(promtool, tmp_path, "qwen", series, {"stable": 20, "canary": 50})
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_tgi_model_s_time_per_token_still_comes_from_tgi_s_histogram(promtool, tmp_path):
    series = _series("tgi_request_mean_time_per_token_duration", "llama", "tgi",
                     {"stable": 0.03, "canary": 0.03})
    result = _evaluate(promtool, tmp_path, "llama", series, {"stable": 30, "canary": 30})
    assert result.returncode == 0, result.stdout + result.stderr
    wrong = _evaluate(promtool, tmp_path, "llama", series, {"stable": 31, "canary": 30})
    assert wrong.returncode != 0  # the check can fail
