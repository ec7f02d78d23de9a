"""Stage 4: the report (markdown + self-contained HTML with plots), rebuilt from artifacts. Never imports torch."""
