/**
 * Guest physical memory. Device code uses the consumer side of {@link io.guestdma.memory.GuestMemory}
 * (read, write, map, unmap); machine code builds the address space (regions, backing).
 */
package io.guestdma.memory;
