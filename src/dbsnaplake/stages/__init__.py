"""The stages, in the order data flows: plan, etl, plan_compaction, compact, validate, publish. Siblings: none
imports another; what two of them share lives in a core module (records, layout, ledger, manifest, frames)."""
