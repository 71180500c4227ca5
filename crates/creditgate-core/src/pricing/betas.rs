//! The `anthropic-beta` features whose whole cost shows up in `usage` and is priced here. A beta
//! that bills outside `usage` (code-execution container hours, a fallback or advisor model,
//! files or skills storage) is not on the list, so a gateway cannot forward it unbilled.

/// Betas the price book bills completely, and why each is safe.
pub const BILLED_BETAS: [&str; 15] = [
    // Identifies Claude Code; changes nothing billed.
    "claude-code-20250219",
    // Cache writes and reads, including 1-hour writes: priced from `cache_creation`.
    "prompt-caching-2024-07-31",
    "extended-cache-ttl-2025-04-11",
    // More or interleaved output and thinking: output tokens.
    "interleaved-thinking-2025-05-14",
    "output-128k-2025-02-19",
    "output-300k-2026-03-24",
    // Streaming and tool formats: input and output tokens.
    "fine-grained-tool-streaming-2025-05-14",
    "token-efficient-tools-2025-02-19",
    "context-management-2025-06-27",
    "pdfs-2024-09-25",
    "computer-use-2025-01-24",
    // Priced by the book: the fast-mode premium (from `usage.speed`), the long-context tier,
    // web searches per request, and free token counting.
    "fast-mode-2026-02-01",
    "context-1m-2025-08-07",
    "web-search-2025-03-05",
    "token-counting-2024-11-01",
];

/// Whether the price book bills everything `beta` can cost.
pub fn bills_beta(beta: &str) -> bool {
    BILLED_BETAS.contains(&beta)
}
