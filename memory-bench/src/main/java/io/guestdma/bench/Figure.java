package io.guestdma.bench;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.function.DoublePredicate;

/**
 * One summary key measured in several JMH forks: the median over forks and the spread (the
 * smallest and the largest fork). A fork is a fresh JVM, so the spread shows how much the JIT's
 * and the machine's choices in one JVM move the figure; a single fork's spread is that fork.
 *
 * @param median the median over forks (the mean of the middle two for an even count)
 * @param min    the smallest fork
 * @param max    the largest fork; for an allocation key, the worst fork
 * @param forks  how many forks, at least 1
 */
public record Figure(double median, double min, double max, int forks) {

    /**
     * Checks the figure is consistent.
     *
     * @throws IllegalArgumentException if {@code forks < 1} or {@code min <= median <= max} fails
     */
    public Figure {
        if (forks < 1 || !(min <= median && median <= max)) {
            throw new IllegalArgumentException("inconsistent figure: median " + median + ", min " + min + ", max " + max
                    + ", forks " + forks);
        }
    }

    /**
     * @param perFork one value per fork, in any order; non-finite values (a ratio over 0) are dropped
     * @return the figure, or empty if no finite value is left (the case was not run)
     */
    public static Optional<Figure> of(List<Double> perFork) {
        List<Double> sorted = new ArrayList<>();
        for (double v : perFork) {
            if (Double.isFinite(v)) {
                sorted.add(v);
            }
        }
        if (sorted.isEmpty()) {
            return Optional.empty();
        }
        sorted.sort(null);
        int n = sorted.size();
        double median = n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
        return Optional.of(new Figure(median, sorted.get(0), sorted.get(n - 1), n));
    }

    /**
     * Judges a target whose test is monotone in the value (a bound such as {@code x >= 1.5}), so
     * the two ends of the spread decide for every fork between them.
     *
     * @param met the target's test
     * @return {@code "yes"} if every fork meets it, {@code "NO"} if none does, and
     *         {@code "not decided"} if the spread straddles it
     */
    public String verdict(DoublePredicate met) {
        boolean low = met.test(min);
        boolean high = met.test(max);
        return low && high ? "yes" : !low && !high ? "NO" : "not decided";
    }
}
