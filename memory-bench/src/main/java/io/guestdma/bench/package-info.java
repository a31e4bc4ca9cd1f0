/** Benchmarks of the copy path against the map path; the suite arrives with the benchmark issue. */
package io.guestdma.bench;
