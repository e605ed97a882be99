/*
 * DPDK's rte_lpm and rte_lpm6 on the table and addresses that
 * benches/examples/lpm_table.rs wrote, measured as it measures patchbay's:
 * build time, batched lookups (64 at a time) over the same 8M addresses,
 * and the sum of the next hops found, to check both give the same answers.
 * Built and run by tools/lpm-vs-dpdk.
 *
 *   lpm_dpdk v4|v6 DIR
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>

#define BATCH 64

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *slurp(const char *dir, const char *name, size_t *len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	*len = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *buf = malloc(*len);
	if (fread(buf, 1, *len, f) != *len) {
		perror(path);
		exit(1);
	}
	fclose(f);
	return buf;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static void v4(const char *dir)
{
	size_t tlen, alen;
	uint8_t *table = slurp(dir, "table", &tlen);
	size_t n = tlen / 5;
	struct rte_lpm_config cfg = { .max_rules = 2 << 20, .number_tbl8s = 1 << 19, .flags = 0 };
	struct rte_lpm *lpm = rte_lpm_create("v4", SOCKET_ID_ANY, &cfg);
	if (!lpm) {
		fprintf(stderr, "rte_lpm_create: %s\n", rte_strerror(rte_errno));
		exit(1);
	}
	double t0 = now();
	size_t refused = 0;
	for (size_t i = 0; i < n; i++) {
		uint32_t p;
		memcpy(&p, table + 5 * i, 4);
		uint8_t len = table[5 * i + 4];
		if (len == 0 || rte_lpm_add(lpm, p, len, i % 1024) < 0)
			refused++;
	}
	printf("v4: %zu prefixes, rte_lpm built in %.3f s (%zu refused)\n", n, now() - t0, refused);
	const char *sets[] = { "inside", "uniform" };
	for (int s = 0; s < 2; s++) {
		uint32_t *addrs = slurp(dir, sets[s], &alen);
		size_t count = alen / 4;
		uint32_t out[BATCH];
		double rates[5];
		uint64_t sum = 0, misses = 0;
		for (int pass = 0; pass < 5; pass++) {
			uint64_t su = 0, mi = 0;
			double t = now();
			for (size_t i = 0; i < count; i += BATCH) {
				unsigned k = count - i < BATCH ? count - i : BATCH;
				rte_lpm_lookup_bulk(lpm, addrs + i, out, k);
				for (unsigned j = 0; j < k; j++) {
					if (out[j] & RTE_LPM_LOOKUP_SUCCESS)
						su += out[j] & 0x00ffffff;
					else
						mi++;
				}
			}
			rates[pass] = count / (now() - t) / 1e6;
			if (pass == 0) {
				sum = su;
				misses = mi;
			}
		}
		qsort(rates, 5, sizeof rates[0], cmp);
		printf("v4: rte_lpm_lookup_bulk, %s: %.1f M/s (median of 5 passes over %zu addresses); sum of next hops %lu, misses %lu\n",
		       sets[s], rates[2], count, (unsigned long)sum, (unsigned long)misses);
		free(addrs);
	}
}

static void v6(const char *dir)
{
	size_t tlen, alen;
	uint8_t *table = slurp(dir, "table", &tlen);
	size_t n = tlen / 17;
	struct rte_lpm6_config cfg = { .max_rules = 1 << 20, .number_tbl8s = 1 << 17, .flags = 0 };
	struct rte_lpm6 *lpm = rte_lpm6_create("v6", SOCKET_ID_ANY, &cfg);
	if (!lpm) {
		fprintf(stderr, "rte_lpm6_create: %s\n", rte_strerror(rte_errno));
		exit(1);
	}
	double t0 = now();
	size_t refused = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t len = table[17 * i + 16];
		if (len == 0 || rte_lpm6_add(lpm, table + 17 * i, len, i % 1024) < 0)
			refused++;
	}
	printf("v6: %zu prefixes, rte_lpm6 built in %.3f s (%zu refused)\n", n, now() - t0, refused);
	const char *sets[] = { "inside", "uniform" };
	for (int s = 0; s < 2; s++) {
		uint8_t(*addrs)[16] = slurp(dir, sets[s], &alen);
		size_t count = alen / 16;
		int32_t out[BATCH];
		double rates[5];
		uint64_t sum = 0, misses = 0;
		for (int pass = 0; pass < 5; pass++) {
			uint64_t su = 0, mi = 0;
			double t = now();
			for (size_t i = 0; i < count; i += BATCH) {
				unsigned k = count - i < BATCH ? count - i : BATCH;
				rte_lpm6_lookup_bulk_func(lpm, addrs + i, out, k);
				for (unsigned j = 0; j < k; j++) {
					if (out[j] >= 0)
						su += out[j];
					else
						mi++;
				}
			}
			rates[pass] = count / (now() - t) / 1e6;
			if (pass == 0) {
				sum = su;
				misses = mi;
			}
		}
		qsort(rates, 5, sizeof rates[0], cmp);
		printf("v6: rte_lpm6_lookup_bulk_func, %s: %.1f M/s (median of 5 passes over %zu addresses); sum of next hops %lu, misses %lu\n",
		       sets[s], rates[2], count, (unsigned long)sum, (unsigned long)misses);
		free(addrs);
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s v4|v6 DIR\n", argv[0]);
		return 2;
	}
	/* The lcore is the CPU this runs on (taskset picks it). */
	char lcore[16];
	snprintf(lcore, sizeof lcore, "%d", sched_getcpu());
	char *eal[] = { argv[0], "--no-huge", "--no-pci", "-l", lcore, "-m", "2048", "--no-shconf",
			"--no-telemetry", "--log-level=lib.eal:error" };
	if (rte_eal_init(sizeof eal / sizeof eal[0], eal) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (strcmp(argv[1], "v4") == 0)
		v4(argv[2]);
	else
		v6(argv[2]);
	rte_eal_cleanup();
	return 0;
}
