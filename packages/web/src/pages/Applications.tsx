export default function Applications(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Applications</h1>
    </div>
  );
}
