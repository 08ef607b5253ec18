"""SNMP plumbing for the agent: a thin typed layer over pysnmp (numeric OIDs, no MIB compiler)."""
