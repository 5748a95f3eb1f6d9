"""Fixed vocabulary of the methodology (METHODOLOGY §1). Rule *values* live in rules/."""

PILLARS: dict[str, tuple[str, ...]] = {
    "labour_standards": ("wages", "children", "forced_labour", "regular_employment", "gender",
                         "discrimination", "freedom_of_association", "working_hours"),
    "health_safety": ("health_safety",),
    "business_ethics": ("business_ethics",),
    "environment": ("energy_emissions", "biodiversity", "waste_pollution", "water"),
}
TOPICS: tuple[str, ...] = tuple(t for topics in PILLARS.values() for t in topics)
TOPIC_PILLAR: dict[str, str] = {t: p for p, topics in PILLARS.items() for t in topics}
DIRECTIONS = ("higher_is_riskier", "lower_is_riskier")
IMPUTATION_METHODS = ("direct", "intermediate_region_mean", "subregion_mean", "region_mean", "world_mean")
