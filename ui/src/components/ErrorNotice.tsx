import { explain } from "../errors";

/** An error in plain words, announced to screen readers. */
export function ErrorNotice({ error, testId }: { error: unknown; testId?: string }) {
  const { title, detail } = explain(error);
  return (
    <div className="notice notice-error" role="alert" data-testid={testId ?? "error"}>
      <strong>{title}</strong>
      <p>{detail}</p>
    </div>
  );
}
