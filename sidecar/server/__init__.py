"""The shell: protobuf conversion, servicers, transports, metrics and the process main."""
