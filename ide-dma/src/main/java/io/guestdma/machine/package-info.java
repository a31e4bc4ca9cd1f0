/** See the module documentation. */
package io.guestdma.machine;
