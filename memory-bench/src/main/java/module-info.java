/**
 * JMH benchmarks comparing the copy path with the map path, and the report that turns their
 * results into a table, a chart and {@code summary.json}. Run them with {@code bin/bench}.
 */
module io.guestdma.bench {
    requires io.guestdma.ide;
    requires io.guestdma.memory;
    requires io.guestdma.virtio;
    requires io.guestdma.migration;
    requires jmh.core;
    requires xchart;
    requires com.fasterxml.jackson.databind;
    requires java.desktop;
}
