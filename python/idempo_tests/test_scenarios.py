"""The rule scenarios of tests/conformance/scenarios, run against the fixture apps of
Starlette, FastAPI and Flask served in this process, on every store. The same files (one
statement of each HTTP-visible rule) are run against every integration's app by the
conformance driver and by the Node suite; this is the Python runner's in-process use.

One test per scenario; its nine cells (framework × store) run side by side, each against
an app of its own."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from runner import NotApplicable, load_scenarios, run_scenario

from idempo_tests.conftest import FRAMEWORKS, MATRIX_SETTINGS, STORES, serving

SCENARIOS = load_scenarios()


async def outcome(name: str, framework: str, store_kind: str) -> str | None:
    """None when the cell passed (or the server itself refused the request the scenario is
    about: that server's own behaviour, printed), else why it failed."""
    scenario: dict[str, Any] = SCENARIOS[name]
    try:
        async with serving(framework, store_kind, {**MATRIX_SETTINGS, **scenario.get("settings", {})}) as (base, _):
            await run_scenario(base, scenario)
    except NotApplicable as refused:
        print(f"{name} on {framework}/{store_kind}: n/a, {refused}")
    except Exception as e:  # noqa: BLE001 - every failure is reported with its cell
        return f"{framework}/{store_kind}: {type(e).__name__}: {e}"
    return None


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario(name: str) -> None:
    cells = [(framework, store) for framework in FRAMEWORKS for store in STORES]
    failures = [f for f in await asyncio.gather(*(outcome(name, *cell) for cell in cells)) if f]
    assert not failures, f"{name} ({SCENARIOS[name]['rules']}) failed:\n" + "\n".join(failures)
