"""Pure cost and power arithmetic: numbers in, numbers out (no I/O, no simulation).

Capex is turned into a cost per second with the capital recovery factor (the level yearly
payment that repays a loan of 1 over `lifetime_years` at rate `cost_of_capital`), spread
evenly over the seconds of a year. Power is idle draw plus a dynamic part that grows
linearly with activity, per chip, plus the system's fixed draw, times PUE.
"""

from __future__ import annotations

SECONDS_PER_YEAR = 365.25 * 86400.0
J_PER_KWH = 3.6e6


def capital_recovery_factor(rate: float, years: float) -> float:
    """Yearly payment per $1 borrowed: r (1+r)^n / ((1+r)^n - 1); 1/n when r = 0.

    >>> capital_recovery_factor(0.0, 5)
    0.2
    >>> round(capital_recovery_factor(0.08, 5), 6)  # 0.08 x 1.469328 / 0.469328
    0.250456
    """
    if years <= 0:
        raise ValueError(f"capital_recovery_factor: years={years}, must be > 0")
    if rate == 0:
        return 1.0 / years
    growth = (1.0 + rate) ** years
    return rate * growth / (growth - 1.0)


def capex_usd_per_s(capex_usd: float, rate: float, years: float) -> float:
    """Amortized capex of one system per second of wall time (annuity / seconds per year).

    >>> round(capex_usd_per_s(315576.0, 0.0, 5) * 3600, 6)  # 315,576 / 5 years, per hour
    7.2
    """
    return capex_usd * capital_recovery_factor(rate, years) / SECONDS_PER_YEAR


def chip_power_w(idle_w: float, max_w: float, activity: float) -> float:
    """Draw of one chip at an activity in [0, 1]: idle + (max - idle) x activity.

    >>> chip_power_w(140.0, 700.0, 0.5)
    420.0
    """
    return idle_w + (max_w - idle_w) * activity


def energy_usd(energy_j: float, usd_per_kwh: float) -> float:
    """Price of `energy_j` joules at `usd_per_kwh`.

    >>> energy_usd(3.6e6, 0.08)
    0.08
    """
    return energy_j / J_PER_KWH * usd_per_kwh


def system_hour_usd(
    *,
    capex_usd: float,
    cost_of_capital: float,
    lifetime_years: float,
    num_chips: int,
    chip_idle_w: float,
    chip_max_w: float,
    fixed_w: float,
    activity: float,
    pue: float,
    usd_per_kwh: float,
    opex_usd_per_year: float = 0.0,
) -> dict[str, float]:
    """Capex, power and opex dollars of one system running one hour with every chip at
    `activity` (the hand-checkable form of what `write_cost_trace` does per bucket).

    >>> c = system_hour_usd(capex_usd=315576.0, cost_of_capital=0.0, lifetime_years=5, num_chips=8,
    ...                     chip_idle_w=100.0, chip_max_w=700.0, fixed_w=2000.0, activity=0.5,
    ...                     pue=1.25, usd_per_kwh=0.1)
    >>> round(c["capex_usd"], 6), round(c["power_usd"], 6)  # (8 x 400 + 2000) W x 1.25 = 6.5 kW
    (7.2, 0.65)
    """
    it_w = num_chips * chip_power_w(chip_idle_w, chip_max_w, activity) + fixed_w
    energy_j = it_w * pue * 3600.0
    return {
        "capex_usd": capex_usd_per_s(capex_usd, cost_of_capital, lifetime_years) * 3600.0,
        "power_usd": energy_usd(energy_j, usd_per_kwh),
        "opex_usd": opex_usd_per_year * 3600.0 / SECONDS_PER_YEAR,
        "energy_j": energy_j,
        "it_power_w": it_w,
    }


def usd_per_mtok(usd: float, tokens: float) -> float | None:
    """Dollars per million tokens; None when there are no tokens.

    >>> usd_per_mtok(2.0, 4e6)
    0.5
    """
    return usd / tokens * 1e6 if tokens > 0 else None
