/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/// <reference lib="dom" />
/**
 * Modal dialogs on the native `<dialog>` element, which traps focus, closes on Escape and
 * returns focus to where it was: the console's confirmations for every change it makes.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

/** A modal dialog, open while it is rendered; Escape or Cancel calls `onClose`. */
export function Modal(props: {
  id: string;
  title: string;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const dialog = ref.current;
    if (dialog === null) return;
    if (!dialog.open) dialog.showModal();
    return () => dialog.close();
  }, []);
  function onCancel(event: Event) {
    event.preventDefault();
    props.onClose();
  }
  return (
    <dialog ref={ref} class="modal" aria-labelledby={`${props.id}-title`} onCancel={onCancel}>
      <h2 id={`${props.id}-title`}>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** A confirmation: what will happen, a Cancel button and a button that does it. */
export function ConfirmDialog(props: {
  id: string;
  title: string;
  confirmLabel: string;
  isDanger?: boolean;
  isBusy: boolean;
  error: string | null;
  onConfirm: () => void;
  onCancel: () => void;
  children: ComponentChildren;
}) {
  return (
    <Modal id={props.id} title={props.title} onClose={props.onCancel}>
      <div class="modal-body">{props.children}</div>
      {props.error === null ? null : <p class="form-error" role="alert">{props.error}</p>}
      <div class="modal-actions">
        <button type="button" class="button" onClick={props.onCancel} disabled={props.isBusy}>
          Cancel
        </button>
        <button
          type="button"
          class={`button ${props.isDanger === true ? "button-danger" : "button-primary"}`}
          onClick={props.onConfirm}
          disabled={props.isBusy}
          autoFocus
        >
          {props.isBusy ? "Working…" : props.confirmLabel}
        </button>
      </div>
    </Modal>
  );
}
