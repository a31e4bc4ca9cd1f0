/** See the module documentation. */
package io.guestdma.ide;
