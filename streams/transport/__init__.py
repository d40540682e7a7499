"""How the stream processor reaches the broker through Faust.

    faust_private   every use of faust-streaming's private API, pinned to the version
                    it was checked against
    driver          the Faust transport (``xmargin://``): bundles in, batches out, and
                    the broker quirks of ``bus.tansu`` applied
    bundles         a fetched run of one partition's records as one Faust event
    batches         sending records in record batches per partition, and ``deliver``
    table           the trader table: its changelog in record batches, its RocksDB
                    stores without a write-ahead log

The transport and the store are registered through Faust's own entry points
(``faust.transports``, ``faust.stores`` in ``pyproject.toml``).
"""
