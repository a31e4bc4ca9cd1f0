/** See the module documentation. */
package io.guestdma.block;
