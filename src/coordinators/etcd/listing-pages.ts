/** How big each page of a paginated etcd listing is. */

/**
 * Listing pages: the first is small (a small namespace is listed in one quick request), then
 * each page doubles up to MAX_PAGE_KEYS, as long as the previous page's bytes per key say it
 * stays under PAGE_BYTES. etcd 3.4 walks every key from the page's start to the end of the
 * range for each page (to count them), so a listing costs it pages × keys: 100,000 tasks in
 * 2,000-key pages kept etcd busy for seconds, long enough to delay every node's keepalive.
 */
export const FIRST_PAGE_KEYS = 1000;
const MAX_PAGE_KEYS = 32_000;
const PAGE_BYTES = 8 * 1024 * 1024;

export function nextPageSize(
  previous: number,
  page: readonly { key: { length: number }; value: { length: number } }[],
): number {
  let bytes = 0;
  for (const kv of page) bytes += kv.key.length + kv.value.length + 32;
  const perKey = page.length > 0 ? bytes / page.length : 64;
  return Math.max(1, Math.min(previous * 2, MAX_PAGE_KEYS, Math.floor(PAGE_BYTES / perKey)));
}
