"""The stream processor: wire records, pure reducers, the Faust app, audit replay."""
