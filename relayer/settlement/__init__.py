"""Cross-chain settlement: running the streams' settlement orders on two chains'
ClearingVaults (``settler``), the proof of a debit the destination believes
(``receipts``), the vaults' calls and reads (``vaults``), and the cross-chain
accountant that holds every credit against its proven debit (``accountant``)."""
