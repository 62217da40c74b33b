"""The shim's metrics: what is counted comes out in the Prometheus text format, buckets cumulative."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from core.shim.metrics import ShimMetrics


def samples(metrics: ShimMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered metrics, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def test_requests_latency_and_lookups_are_rendered_as_prometheus_reads_them() -> None:
    metrics = ShimMetrics()
    for seconds in (0.0004, 0.0005, 0.003, 7.0):
        metrics.observe_request("/v1/lookup", "GET", 200, seconds)
    metrics.observe_request("/v1/lookup", "GET", 401, 0.0001)
    metrics.observe_lookup("acme", "exact")
    metrics.observe_lookup("acme", "exact")
    metrics.observe_lookup("globex", "none")
    found = samples(metrics)
    route = (("route", "/v1/lookup"),)
    assert (
        found[("switchboard_http_requests_total", (("method", "GET"), ("route", "/v1/lookup"), ("status", "200")))] == 4
    )
    assert (
        found[("switchboard_http_requests_total", (("method", "GET"), ("route", "/v1/lookup"), ("status", "401")))] == 1
    )
    bucket = "switchboard_http_request_duration_seconds_bucket"
    assert found[(bucket, (("le", "0.0005"), *route))] == 3  # a bound is inclusive: 0.0005 lands in it
    assert found[(bucket, (("le", "0.005"), *route))] == 4
    assert found[(bucket, (("le", "2.5"), *route))] == 4
    assert found[(bucket, (("le", "+Inf"), *route))] == 5
    assert found[("switchboard_http_request_duration_seconds_count", route)] == 5
    assert abs(found[("switchboard_http_request_duration_seconds_sum", route)] - 7.0040) < 1e-9
    assert found[("switchboard_lookups_total", (("result", "exact"), ("tenant", "acme")))] == 2
    assert found[("switchboard_lookups_total", (("result", "none"), ("tenant", "globex")))] == 1


def test_nothing_counted_renders_empty_families() -> None:
    assert samples(ShimMetrics()) == {}
