"""Epsilon schedules and units."""

import numpy as np
import pytest

from tf_asgan import schedules


def values(schedule, steps):
    return [float(schedule(s)) for s in steps]


def test_constant():
    assert values(schedules.Constant(0.25), [0, 7, 10**6]) == [0.25] * 3


def test_delayed_is_zero_for_the_first_n_steps():
    s = schedules.get("delayed", 0.5, start_step=3)
    assert values(s, [0, 2, 3, 100]) == [0.0, 0.0, 0.5, 0.5]


def test_linear_ramp():
    s = schedules.get("linear", 0.8, start_step=2, ramp_steps=4)
    np.testing.assert_allclose(values(s, [0, 2, 3, 4, 6, 50]), [0, 0, 0.2, 0.4, 0.8, 0.8],
                               rtol=1e-6)


def test_units():
    assert schedules.to_input_units(1 / 255, "input") == 1 / 255
    assert schedules.to_input_units(1 / 255, "pixel") == 2 / 255
    with pytest.raises(ValueError, match="pixel"):
        schedules.to_input_units(1.0, "percent")


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_bad_epsilon(bad):
    with pytest.raises(ValueError, match="epsilon must be >= 0"):
        schedules.Constant(bad)


def test_bad_names_and_steps():
    with pytest.raises(ValueError, match="constant"):
        schedules.get("cosine", 0.1)
    with pytest.raises(ValueError, match="start_step"):
        schedules.Delayed(0.1, start_step=-1)
    with pytest.raises(ValueError, match="ramp_steps"):
        schedules.LinearRamp(0.1, ramp_steps=0)


def test_the_ceiling_is_the_whole_input_range_in_either_unit():
    assert schedules.MAX_EPSILON == 2.0  # images in [-1, 1]
    assert schedules.as_schedule(2.0)[0].max_epsilon == 2.0
    schedule, factor = schedules.as_schedule(schedules.Delayed(1.0, 5), "pixel")
    assert schedule.max_epsilon * factor == 2.0
    for epsilon, unit in ((float(np.nextafter(2.0, 3.0)), "input"), (1.001, "pixel")):
        with pytest.raises(ValueError, match="must lie in \\[0, 2\\] in input units"):
            schedules.as_schedule(epsilon, unit)
