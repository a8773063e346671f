"""Sweeps over configs and seeds (local processes or Ray), result tables with CIs, reports."""
