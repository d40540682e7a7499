"""The Kafka-protocol bus as both sides of xmargin use it: publishing records,
consuming them with dead-lettering, creating the topics, and the broker's quirks.

Tree of the seam::

    bus.tansu       what the local broker (Tansu 0.6) does differently from Kafka, and
                    the workarounds; the only module that knows
    bus.admin       creating the wire topics with one partition count
    bus.publisher   ``Publisher`` (a ``RecordSink``): records and dead letters out
    bus.consumer    ``consume``: records in, the invalid ones dead-lettered

It imports ``wire`` and aiokafka only: the relayer and the stream processor depend on
it, never the other way round.
"""
