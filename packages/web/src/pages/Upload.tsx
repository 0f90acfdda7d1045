export default function Upload(_props: Record<string, unknown>) {
  return (
    <div className="page">
      <h1>Upload</h1>
    </div>
  );
}
