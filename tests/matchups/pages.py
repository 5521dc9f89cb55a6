"""Builders for matchup pages in the site's format (our own words, for the variations)."""

from __future__ import annotations

STRAPLINE = (
    "Which one should you ship with? Here is the side-by-side panel verdict, pricing read, "
    "reviewer split, and community vote comparison."
)
FOOTER = [
    "Weekly AI Tool Verdicts",
    "Get the next comparison in your inbox",
    "New AI tools ship daily. We compare them before you waste an afternoon.",
]


def tool_block(
    name: str,
    *,
    category: str = "Writing",
    tagline: str = "A tagline",
    panel: str = "75%",
    community: str = "—",
    entry: str = "Free",
    description: str = "A description of the tool in one paragraph.",
) -> list[str]:
    return [
        category,
        name,
        tagline,
        panel,
        "Panel ship",
        community,
        "Community",
        entry,
        "Entry",
        description,
    ]


def page(
    tool_a: list[str],
    tool_b: list[str],
    quotes: list[str],
    *,
    title: str | None = None,
    footer: bool = True,
) -> str:
    lines = [
        "AI tool comparison",
        title if title is not None else f"{tool_a[1]} vs {tool_b[1]}",
        STRAPLINE,
        *tool_a,
        *tool_b,
        "Reviewer scorecard",
        *[f"“{q}”" for q in quotes],
    ]
    if footer:
        lines += FOOTER
    return "\n".join(lines)


FOUR_LENS_QUOTES = [
    "The primitive is a shared canvas. It works.",
    "The primitive is a document store with an API.",
    "Direct competitors are everywhere in this space.",
    "Category leaders already do this better.",
    "The thesis: every team will want this by 2028.",
    "The thesis is weaker here, frankly.",
    "The buyer is a product manager with a budget.",
    "The buyer is unclear, and that is a problem.",
]
