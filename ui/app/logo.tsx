/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The Aspen mark: three stacked replicas, one of them leading.
 */

/** The Aspen mark, decorative (the product name is always written beside it). */
export function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true">
      <rect x="2" y="3" width="20" height="5" rx="1.5" class="logo-lead" />
      <rect x="2" y="10" width="20" height="5" rx="1.5" class="logo-follow" />
      <rect x="2" y="17" width="20" height="5" rx="1.5" class="logo-follow" />
    </svg>
  );
}
