"""Response models: the published shapes (reference/metrics-api-reference.txt), each field's
formula in a sentence. The service builds plain dicts for speed; tests validate every answer
against these models, and the OpenAPI schema is generated from them."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Formats in the schema, so that generated clients give dates and datetimes, not strings.
# The fields stay `str` here: the service writes the exact published spelling (...T00:00:00Z).
DateStr = Annotated[str, Field(json_schema_extra={"format": "date"})]
DateTimeStr = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
NO_CALLS = "; null when the window has no calls"
DATA_AS_OF = Field(
    description="RFC 3339 UTC instant, to the second: every call whose ingest was answered "
    "before it is counted in this answer (the rollups' watermark: the earliest call still "
    "queued for them, or when the answer was computed if none was). A cached answer keeps "
    "the instant of the data it was computed from."
)


TIMEZONE = Field(
    description="The account's IANA timezone (`GET /v1/account`): the days of the window are "
    "its calendar days."
)


class DayPeriod(_Model):
    start_date: DateTimeStr = Field(
        description="First instant of the window: local midnight of its first day, RFC 3339 "
        "(YYYY-MM-DDT00:00:00Z for a UTC account, else with the zone's offset at that "
        "instant, e.g. 2026-03-01T00:00:00+01:00)."
    )
    end_date: DateTimeStr = Field(
        description="Last second of the window: 23:59:59 local time on its last day, in the "
        "same form (the offset may differ from start_date's across a DST change)."
    )
    timezone: str = TIMEZONE


class OverviewPeriod(DayPeriod):
    days: int = Field(description="Number of whole days (the account's calendar days).")


class OverviewSummary(_Model):
    total_calls: int = Field(description="Calls in the window.")
    total_cost_usd: float = Field(description="Sum of cost_usd, 2 decimals.")
    avg_cost_per_call: float | None = Field(
        description="total cost / calls, 5 decimals" + NO_CALLS + "."
    )
    avg_latency_ms: int | None = Field(description="Mean latency_ms, whole ms" + NO_CALLS + ".")
    success_rate: float | None = Field(
        description="Calls with status success / calls" + NO_CALLS + "."
    )
    total_attempts: int = Field(
        description="Provider attempts: the sum over calls of 1 + retry_count + 1 if fallback_used."
    )
    cost_per_successful_call: float | None = Field(
        description="total cost / calls with status success, 5 decimals; null when no call "
        "succeeded."
    )


class Routing(_Model):
    accuracy: float | None = Field(
        description="Calls routed right / calls; routed right = no failure_mode and "
        "(quality_score null or >= 0.7)" + NO_CALLS + "."
    )
    fallback_rate: float | None = Field(
        description="Calls with fallback_used / calls" + NO_CALLS + "."
    )
    retry_rate: float | None = Field(
        description="Calls with retry_count > 0 / calls" + NO_CALLS + "."
    )


class OverviewModel(_Model):
    calls: int = Field(description="Calls served by this model.")
    percentage: float = Field(description="This model's share of calls (0..1).")
    avg_cost: float = Field(description="Mean cost_usd of its calls, 5 decimals.")
    avg_latency_ms: int = Field(description="Mean latency of its calls.")


class OverviewResponse(_Model):
    period: OverviewPeriod
    summary: OverviewSummary
    routing: Routing
    models: dict[str, OverviewModel] = Field(
        description="Per served model, most calls first (ties by name)."
    )
    task_distribution: dict[str, float] = Field(
        description="Per task type, its share of calls, largest first."
    )
    data_as_of: DateTimeStr = DATA_AS_OF


class Usage(_Model):
    total_calls: int = Field(description="Calls in the window.")
    total_tokens: int = Field(description="Sum of input_tokens + output_tokens.")
    total_cost_usd: float = Field(description="Sum of cost_usd, 2 decimals.")
    avg_calls_per_day: float = Field(
        description="Calls / days in the window (calendar days, whatever their length in "
        "hours), 1 decimal."
    )


class VsGpt4o(_Model):
    cost_if_gpt4o: float = Field(
        description="Sum of tokens priced at gpt-4o's list price (price table), 2 decimals."
    )
    savings_usd: float = Field(description="cost_if_gpt4o - total cost.")
    savings_percentage: float | None = Field(
        description="100 x savings / cost_if_gpt4o, 1 decimal; null when cost_if_gpt4o is 0."
    )


class VsBaseline(_Model):
    model: str = Field(description="The baseline_model parameter (default gpt-4o).")
    cost_if_baseline: float = Field(
        description="Sum of the window's tokens priced at the model's list price in force on "
        "each day (price table, `perf-metrics prices`), 2 decimals."
    )
    savings_usd: float = Field(description="cost_if_baseline - total cost.")
    savings_percentage: float | None = Field(
        description="100 x savings / cost_if_baseline, 1 decimal; null when cost_if_baseline is 0."
    )


class Budget(_Model):
    monthly_budget_usd: float = Field(description="The account's monthly budget.")
    spent: float = Field(description="current_month: cost from the 1st through end_date.")
    remaining: float = Field(description="max(0, monthly_budget_usd - spent).")
    status: str = Field(
        description="over when spent >= the budget, else at_risk when projected_month_end >= "
        "the budget, else ok.",
        json_schema_extra={"enum": ["ok", "at_risk", "over"]},
    )
    projected_exceed_date: DateStr | None = Field(
        description="When over: the first date of this month whose cost from the 1st through "
        "it reached the budget. Else the first date d from end_date on where this month's cost "
        "before end_date + the daily rate of projected_month_end x days from end_date through "
        "d reaches it; null when that does not happen this month."
    )


class CostAnalysis(_Model):
    current_month: float = Field(
        description="Cost from the 1st of end_date's month through it: a calendar month in the "
        "account's timezone."
    )
    previous_month: float = Field(
        description="Cost of the whole previous calendar month (the account's timezone)."
    )
    change_percentage: float | None = Field(
        description="100 x (current_month - P) / P, P = previous month's days "
        "1..min(today's day, its length); null when P is 0."
    )
    projected_month_end: float = Field(
        description="This month's cost before today + (cost of the 7 days before today / 7) x "
        "days left in the month counting today."
    )
    vs_gpt4o_only: VsGpt4o
    vs_baseline: VsBaseline
    budget: Budget | None = Field(
        default=None,
        description="Only when the account has a monthly budget (`monthly_budget_usd`, "
        "`GET /v1/account`); absent (never null) otherwise.",
    )


class QualityPreferences(_Model):
    cost_vs_quality_ratio: float = Field(description="Account setting, 0..1.")
    latency_sensitivity: float = Field(description="Account setting, 0..1.")
    preferred_models: list[str] = Field(
        description="Account setting, or if empty the two models with most calls."
    )


class TaskProfile(_Model):
    dominant_tasks: list[str] = Field(
        description="Task types with >= 20% of calls, largest first (else the largest one)."
    )
    complexity_avg: float | None = Field(
        description="Mean of the non-null complexity_score values, 3 decimals; null when no "
        "call in the window has one."
    )
    task_overrides: dict[str, str] = Field(description="Account setting: task type -> model.")


class BehaviorInsights(_Model):
    peak_hours: list[int] = Field(
        description="Hours of day (0-23, wall-clock hours in the account's timezone; both "
        "occurrences of a repeated fall-back hour count to it), ascending, whose call count "
        "is >= 1.25 x calls / 24."
    )
    avg_conversation_length: float | None = Field(
        description="Mean of the non-null message_count values, 1 decimal; null when no call "
        "in the window has one."
    )
    retry_rate: float | None = Field(
        description="Calls with retry_count > 0 / calls" + NO_CALLS + "."
    )
    cost_ceiling_hit_rate: float | None = Field(
        description="Calls with cost_ceiling_hit / calls" + NO_CALLS + "."
    )


class CustomerResponse(_Model):
    account_id: str = Field(description="The key's account.")
    period: DayPeriod
    usage: Usage
    cost_analysis: CostAnalysis
    quality_preferences: QualityPreferences
    task_profile: TaskProfile
    behavior_insights: BehaviorInsights
    data_as_of: DateTimeStr = DATA_AS_OF


class PerformanceModel(_Model):
    calls: int = Field(description="Calls of this task served by this model.")
    success_rate: float = Field(description="Successes / calls.")
    avg_cost_usd: float = Field(description="Mean cost_usd, 5 decimals.")
    avg_latency_ms: int = Field(description="Mean latency, whole ms.")
    p50_latency_ms: int | None = Field(
        description="Nearest-rank median latency (a histogram of each day's calls: within 2%); "
        "null only when none of its calls has one (calls counted before the histograms and "
        "gone from the log since)."
    )
    p95_latency_ms: int | None = Field(
        description="Nearest-rank 95th percentile latency (histogram, within 2%); null as "
        "p50_latency_ms."
    )
    quality_score: float | None = Field(
        description="Mean of the non-null quality scores, 3 decimals; null when none of these "
        "calls had a quality score."
    )


class TaskPerformance(_Model):
    total_calls: int = Field(description="Calls of this task type.")
    models: dict[str, PerformanceModel] = Field(description="Per served model, most calls first.")
    optimal_model: str | None = Field(
        description="Among models with >= 20 scored calls, those within 0.02 of the best "
        "effective quality (quality x success rate): the cheapest; null when none is eligible."
    )
    optimal_reason: str = Field(description="What decided: quality, cost, or both.")


class Recommendation(_Model):
    task_type: str = Field(description="The task type whose routing could change.")
    current_model: str = Field(description="The model with most calls for this task.")
    recommended_model: str = Field(description="The task's optimal model.")
    potential_savings_usd: float = Field(
        description="max(0, (avg cost of current - avg cost of recommended) x calls of current): "
        "0 when the recommended model costs more (see cost_change_usd)."
    )
    cost_change_usd: float = Field(
        description="(avg cost of recommended - avg cost of current) x calls of current, 2 "
        "decimals, signed: negative is a saving, positive what the better quality would cost."
    )
    quality_improvement: float | None = Field(
        description="quality_score of recommended - quality_score of current, 3 decimals; null "
        "when the current model has no quality scores in the window."
    )


class PerformanceResponse(_Model):
    period: DayPeriod
    by_task_type: dict[str, TaskPerformance] = Field(description="Per task type, largest first.")
    recommendations: list[Recommendation] = Field(description="Largest savings first.")
    data_as_of: DateTimeStr = DATA_AS_OF


class FailureSummary(_Model):
    total_failures: int = Field(description="Calls with a failure_mode.")
    failure_rate: float | None = Field(description="total_failures / calls" + NO_CALLS + ".")
    retries_succeeded: int = Field(description="Failed calls rescued by a retry.")
    fallback_succeeded: int = Field(description="Failed calls rescued by a fallback.")
    unrecoverable: int = Field(description="Calls whose final status is error.")


class FailureMode(_Model):
    count: int = Field(description="Calls that failed this way.")
    percentage: float = Field(description="count / total_failures (0..1).")
    affected_models: list[str] = Field(
        description="First-choice models with >= 10% of this mode's failures, at most 5."
    )
    common_triggers: list[str] = Field(description="The 3 most frequent failure_trigger values.")


class FailureModel(_Model):
    total_calls: int = Field(description="Calls with this first-choice model.")
    failures: int = Field(description="Of which had a failure_mode.")
    failure_rate: float = Field(description="failures / total_calls.")
    top_failure_modes: list[str] = Field(description="Its two most frequent failure modes.")


class Mitigation(_Model):
    issue: str = Field(description="A failure mode concentrated on one first-choice model.")
    recommendation: str = Field(
        description="The model with the lowest rate of that mode on the same task types."
    )
    expected_improvement: str = Field(description="The reduction switching would bring.")


class FailuresResponse(_Model):
    period: DayPeriod
    summary: FailureSummary
    by_failure_mode: dict[str, FailureMode] = Field(description="Per failure mode, most first.")
    by_model: dict[str, FailureModel] = Field(
        description="Per first-choice model, most failures first."
    )
    mitigation_recommendations: list[Mitigation] = Field(
        description="Switches the data supports, one per concentrated failure mode."
    )
    data_as_of: DateTimeStr = DATA_AS_OF


class HourPeriod(_Model):
    start_time: DateTimeStr = Field(description="end_time - hours.")
    end_time: DateTimeStr = Field(description="end_time truncated down to 5 minutes (UTC).")
    hours: int = Field(description="Hours in the window.")


class Incident(_Model):
    started_at: DateTimeStr = Field(description="Start of the first 5-minute interval of the run.")
    ended_at: DateTimeStr | None = Field(
        description="End of the last interval; null while the run reaches the window's end."
    )
    peak_error_rate: float = Field(description="Highest interval error rate in the run.")
    affected_calls: int = Field(description="First-choice calls that failed provider-side.")


class ProviderHealth(_Model):
    status: str = Field(
        description="From the last three 5-minute intervals: error rate >= 0.25 outage, "
        ">= 0.05 degraded, else operational; unknown without first-choice traffic."
    )
    uptime: float | None = Field(
        description="Share of 5-minute intervals with first-choice traffic whose error rate "
        "was below 0.5; null when it had no first-choice calls in the window (it only served "
        "fallbacks)."
    )
    avg_latency_ms: int | None = Field(
        description="Mean latency of calls it served; null when it served none in the window "
        "(it was only a first choice that failed over)."
    )
    p95_latency_ms: int | None = Field(
        description="Nearest-rank p95 (histogram, within 2%); null when it served no calls."
    )
    p99_latency_ms: int | None = Field(
        description="Nearest-rank p99 (histogram, within 2%); null when it served no calls."
    )
    error_rate: float | None = Field(
        description="First-choice calls failing provider-side / first-choice calls; null when "
        "it had no first-choice calls in the window."
    )
    rate_limit_hits: int = Field(description="First-choice calls failing with rate_limited.")
    incidents: list[Incident] = Field(
        description="Runs of 5-minute intervals with >= 10 first-choice calls and error rate "
        ">= 0.25, oldest first."
    )


class VsPrevious(_Model):
    latency_change: float | None = Field(
        description="Relative change of mean latency; null when the previous window's is 0 or "
        "absent."
    )
    error_change: float | None = Field(
        description="Relative change of error_rate; null when the previous window's is 0 or absent."
    )


class ProviderTrend(_Model):
    latency_trend: str = Field(description="improving (<= -5%), degrading (>= +5%), or stable.")
    error_trend: str = Field(description="improving (<= -5%), degrading (>= +5%), or stable.")
    vs_previous_period: VsPrevious


class ProviderRecommendation(_Model):
    provider: str = Field(description="The provider the finding is about.")
    message: str = Field(
        description="What the data shows: slow UTC hours (p95 >= 1.25 x window p95) or a "
        "degraded/outage status."
    )
    action: str = Field(description="What to do about it, naming an alternative when one exists.")


class ProvidersResponse(_Model):
    period: HourPeriod
    providers: dict[str, ProviderHealth] = Field(
        description="Per provider seen in the window (first choice or served), most served first."
    )
    trends: dict[str, ProviderTrend] = Field(
        description="Per provider, this window against the previous window of the same length."
    )
    recommendations: list[ProviderRecommendation] = Field(
        description="Latency findings by UTC hour, then error-rate findings."
    )
    data_as_of: DateTimeStr = DATA_AS_OF


class DailyPeriod(_Model):
    start_date: DateStr = Field(description="First day of the window (a local date).")
    end_date: DateStr = Field(description="Last day of the window (a local date).")
    timezone: str = TIMEZONE


class Day(_Model):
    date: DateStr = Field(
        description="The day, YYYY-MM-DD: a calendar day in the account's timezone (23, 24 or "
        "25 hours long around DST changes)."
    )
    total_calls: int = Field(description="Calls that day (0 for a day without calls).")
    total_cost_usd: float = Field(description="Sum of cost_usd that day, 2 decimals.")
    avg_latency_ms: int | None = Field(description="Mean latency that day; null without calls.")
    success_rate: float | None = Field(description="Successes / calls; null without calls.")
    model_distribution: dict[str, int] = Field(description="Served model -> calls.")
    task_distribution: dict[str, int] = Field(description="Task type -> calls.")


class DailyTrends(_Model):
    calls_trend: str = Field(
        description="From avg_daily_growth: increasing > 0.01, decreasing < -0.01, else stable."
    )
    cost_trend: str = Field(description="The same measure on daily cost.")
    quality_trend: str = Field(
        description="Slope of daily mean quality: improving > 0.001/day, declining < -0.001."
    )
    avg_daily_growth: float | None = Field(
        description="Least-squares slope of daily calls / mean daily calls, over complete days "
        "(today excluded); null under 2 days or a mean of 0."
    )


class DailyResponse(_Model):
    period: DailyPeriod
    daily_data: list[Day] = Field(description="One entry per day, oldest first, empty days too.")
    trends: DailyTrends
    data_as_of: DateTimeStr = DATA_AS_OF


class BreakdownTotals(_Model):
    calls: int = Field(description="Calls in the window (all of them, whatever `value` asks).")
    total_cost_usd: float = Field(description="Their cost, 2 decimals; overview's total.")
    input_tokens: int = Field(description="Their input tokens.")
    output_tokens: int = Field(description="Their output tokens.")


class BreakdownDay(_Model):
    date: DateStr = Field(description="A local day of the window.")
    calls: int = Field(description="The group's calls that day (0 without).")
    total_cost_usd: float = Field(description="Their cost, 2 decimals.")


class BreakdownGroup(_Model):
    value: str | None = Field(
        description="The dimension's value; null for the calls without it (no user_id)."
    )
    calls: int = Field(description="The group's calls in the window.")
    total_cost_usd: float = Field(description="Their cost, 2 decimals.")
    cost_share: float | None = Field(
        description="Their cost / the window's cost, 3 decimals; null when the window cost 0."
    )
    input_tokens: int = Field(description="Their input tokens.")
    output_tokens: int = Field(description="Their output tokens.")
    avg_cost_per_call: float = Field(description="Cost / calls, 5 decimals.")
    avg_latency_ms: int = Field(description="Mean latency_ms, whole ms.")
    success_rate: float = Field(description="Calls with status success / calls, 3 decimals.")
    failure_rate: float = Field(
        description="Calls with a failure_mode (rescued or not) / calls, 3 decimals."
    )
    quality_score: float | None = Field(
        description="Mean of the non-null quality_score values, 3 decimals; null when none."
    )
    daily: list[BreakdownDay] | None = Field(
        None,
        description="With series=daily: one entry per local day of the window, oldest first; "
        "null (absent) without series.",
    )


class BreakdownResponse(_Model):
    period: DayPeriod
    group_by: str = Field(description="The dimension grouped by.")
    totals: BreakdownTotals
    groups: list[BreakdownGroup] = Field(
        description="This page's groups: exact cost descending, then calls descending, then "
        "value ascending (null after the names). Over all pages (without `value`), every call "
        "of the window is in exactly one group, and the groups add up to `totals`."
    )
    has_more: bool = Field(description="Whether a next page exists.")
    next_page: str | None = Field(
        description="The `page` of the next page (with the same other parameters); null on "
        "the last page."
    )
    data_as_of: DateTimeStr = DATA_AS_OF
