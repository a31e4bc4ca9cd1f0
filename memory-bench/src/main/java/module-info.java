/** JMH benchmarks comparing the copy path with the map path (arrives with the benchmark issue). */
module io.guestdma.bench {
    requires io.guestdma.ide;
}
