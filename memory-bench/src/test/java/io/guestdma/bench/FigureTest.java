package io.guestdma.bench;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.List;
import org.junit.jupiter.api.Test;

class FigureTest {

    @Test
    void medianAndSpreadOverForks() {
        assertThat(Figure.of(List.of(3.0, 1.0, 2.0))).contains(new Figure(2.0, 1.0, 3.0, 3));
        assertThat(Figure.of(List.of(4.0, 1.0))).as("even count: mean of the middle two").contains(new Figure(2.5, 1.0, 4.0, 2));
        assertThat(Figure.of(List.of(Double.NaN, 5.0, Double.POSITIVE_INFINITY))).contains(new Figure(5.0, 5.0, 5.0, 1));
        assertThat(Figure.of(List.of())).isEmpty();
        assertThat(Figure.of(List.of(Double.NaN))).isEmpty();
        assertThatThrownBy(() -> new Figure(1, 2, 3, 1)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Figure(1, 1, 1, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void aTargetIsDecidedOnlyWhenEveryForkFallsOnTheSameSide() {
        assertThat(new Figure(1.6, 1.55, 1.7, 3).verdict(x -> x >= 1.5)).isEqualTo("yes");
        assertThat(new Figure(1.4, 1.3, 1.45, 3).verdict(x -> x >= 1.5)).isEqualTo("NO");
        assertThat(new Figure(1.6, 1.4, 1.7, 3).verdict(x -> x >= 1.5)).isEqualTo("not decided");
        assertThat(new Figure(1.4, 1.4, 1.4, 1).verdict(x -> x <= 1.5)).isEqualTo("yes");
    }
}
