"""Per-layer extrapolation of reduced trial runs (pure arithmetic, no torch)."""
import pytest

from napkin_gui.probe.extrapolate import extrapolate_int, extrapolate_timeline, linear_extrapolate


def test_two_points_give_slope_and_intercept():
    # weights 1 GiB fixed + 0.25 GiB per layer: 2 -> 1.5, 4 -> 2.0, 32 -> 9.0
    g = 2**30
    assert extrapolate_int([(2, int(1.5 * g)), (4, 2 * g)], 32) == 9 * g
    assert linear_extrapolate([(2, 0.10), (4, 0.16)], 32) == pytest.approx(0.10 + 30 * 0.03)


def test_least_squares_over_three_points_and_one_point():
    assert linear_extrapolate([(1, 3.0), (2, 5.0), (3, 7.0)], 10) == pytest.approx(21.0)
    assert linear_extrapolate([(4, 7.0)], 4) == 7.0
    assert extrapolate_int([(2, 10), (4, None)], 8) is None
    with pytest.raises(ValueError):
        linear_extrapolate([], 3)


def synthetic(k: int, ckpt: bool) -> list[tuple[str, int]]:
    """Timeline of a k-layer run from known coefficients: a + b*k (+ c*j per layer)."""
    w = 100 * k + 1000  # weights + optimizer states grow by 100 per layer
    t = [("weights loaded", w)]
    t += [(f"forward L{j}", w + 500 + 40 * j) for j in range(1, k + 1)]
    t += [("logits & loss", w + 3000 + 40 * k), ("backward head", w + 2500 + 40 * k)]
    for j in range(k, 0, -1):
        if ckpt:
            t.append((f"recompute L{j}", w + 700 + 40 * j))
        t.append((f"backward L{j}", w + 600 + 30 * j))
    t += [("optimizer step", w + 200 * k), ("after zero_grad", w)]
    return t


@pytest.mark.parametrize("ckpt", [False, True])
def test_timeline_is_stretched_to_the_full_depth(ckpt):
    full = synthetic(32, ckpt)
    got = extrapolate_timeline([(2, synthetic(2, ckpt)), (4, synthetic(4, ckpt))], 32)
    assert [p for p, _ in got] == [p for p, _ in full]
    assert got == tuple(full)


def test_timeline_of_the_whole_model_is_kept_as_measured():
    t = synthetic(4, False)
    assert extrapolate_timeline([(4, t)], 4) == tuple(t)
    assert extrapolate_timeline([], 4) == ()


def test_trial_depths_follow_the_layer_pattern():
    from napkin_gui.probe.extrapolate import trial_depths
    assert trial_depths([10] * 32) == (2, 4)
    assert trial_depths([10] * 4) == (4,) and trial_depths([10] * 3) == (3,)
    # DeepSeek-V3: 3 dense layers, then MoE layers
    assert trial_depths([10] * 3 + [90] * 58) == (3, 4)
    # one dense layer first (DeepSeek-V2-Lite): 2 and 4 are both past it
    assert trial_depths([10] + [90] * 26) == (2, 4)


def test_timings_never_shrink_with_depth():
    from napkin_gui.probe.extrapolate import extrapolate_seconds
    assert extrapolate_seconds([(2, 0.10), (4, 0.16)], 32) == pytest.approx(0.10 + 30 * 0.03)
    # timer noise: the 4-layer run came out faster than the 2-layer one
    assert extrapolate_seconds([(2, 0.20), (4, 0.16)], 32) == 0.16
    assert extrapolate_seconds([(6, 0.5)], 6) == 0.5
