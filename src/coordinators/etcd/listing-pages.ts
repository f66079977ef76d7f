/** How big each page of a paginated etcd listing is. */

/**
 * Listing pages: the first holds FIRST_PAGE_KEYS keys (a small namespace is one request), then
 * each page is four times the last, up to MAX_PAGE_KEYS and as long as the previous page's
 * bytes per key say it stays under PAGE_BYTES. Both ends cost: etcd 3.4 answers every page by
 * walking all keys from the page's start to the end of the range (to count them), holding its
 * index lock meanwhile, so 300,000 keys in 2,000-key pages kept a loaded etcd from answering
 * anyone for seconds; and a node decodes and applies each page in one go, so 160,000-key pages
 * stalled a joining node's event loop past its lease's safety margin on a loaded machine.
 */
export const FIRST_PAGE_KEYS = 10_000;
const GROWTH = 4;
const MAX_PAGE_KEYS = 25_000;
const PAGE_BYTES = 4 * 1024 * 1024;

export function nextPageSize(
  previous: number,
  page: readonly { key: { length: number }; value: { length: number } }[],
): number {
  let bytes = 0;
  for (const kv of page) bytes += kv.key.length + kv.value.length + 32;
  const perKey = page.length > 0 ? bytes / page.length : 64;
  return Math.max(1, Math.min(previous * GROWTH, MAX_PAGE_KEYS, Math.floor(PAGE_BYTES / perKey)));
}
