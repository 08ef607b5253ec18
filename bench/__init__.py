"""ReadyNet benchmarks: the agent's real code against a well-known reference, in the same run.

Run everything with ``python -m bench`` (``make bench``), or one part with
``python -m bench.snmp_poll`` / ``python -m bench.onnet``. Each benchmark:

* sends traffic only to 127.0.0.1, or between network namespaces it creates itself;
* is bounded in time, stops by itself and cleans up every process and namespace it started;
* prints a ratio against a reference measured in the same run on the same machine, because
  absolute numbers on a shared 2-core box mean little, ratios mean more.

`bench.snmp_poll` times one SNMP poll (`SnmpProbe.run`) against net-snmp's command-line tools over
the same snmpsim; `bench.onnet` times the on-net throughput probe (`OnNetProbe`) against iperf3 on
loopback, and on a shaped veth link between two namespaces when ``ip netns`` is available.
"""
