#include "riffledb/format/fragment.h"

#include <arrow/array.h>
#include <arrow/array/array_dict.h>
#include <arrow/builder.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/byte_size.h>

#include <limits>
#include <map>
#include <string_view>

#include "riffledb/util/crc32c.h"
#include "riffledb/util/status.h"

namespace riffledb::format {

namespace {

arrow::ipc::IpcWriteOptions WriteOptions() {
  auto options = arrow::ipc::IpcWriteOptions::Defaults();
  options.use_threads = false;
  // Uncompressed (the default codec is none): takes are a memory map plus a gather.
  // A dictionary that grows between batches is written as a delta; one that changes
  // otherwise starts a new fragment (see FragmentWriter::NeedsNewFile).
  options.emit_dictionary_deltas = true;
  return options;
}

// Passes writes through to `inner`, keeping the size and CRC-32C of the bytes written:
// the digest a format-2 manifest records for the file, computed without reading it back.
class DigestStream : public arrow::io::OutputStream {
 public:
  explicit DigestStream(std::shared_ptr<arrow::io::OutputStream> inner)
      : inner_(std::move(inner)) {}

  arrow::Status Write(const void* data, int64_t nbytes) override {
    ARROW_RETURN_NOT_OK(inner_->Write(data, nbytes));
    digest_.crc32c = Crc32c(data, static_cast<size_t>(nbytes), digest_.crc32c);
    digest_.size += nbytes;
    return arrow::Status::OK();
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    return Write(data->data(), data->size());
  }
  arrow::Status Flush() override { return inner_->Flush(); }
  arrow::Status Close() override { return inner_->Close(); }
  arrow::Status Abort() override { return inner_->Abort(); }
  arrow::Result<int64_t> Tell() const override { return digest_.size; }
  bool closed() const override { return inner_->closed(); }

  const FileDigest& digest() const { return digest_; }

 private:
  std::shared_ptr<arrow::io::OutputStream> inner_;
  FileDigest digest_;
};

// One fragment file being written through the seam: durable once Finish() returns OK.
class FileSink {
 public:
  static arrow::Result<std::unique_ptr<FileSink>> Open(
      io::FileSystem& fs, const std::string& path,
      const std::shared_ptr<arrow::Schema>& schema) {
    ARROW_ASSIGN_OR_RAISE(auto file, fs.CreateOutput(path));
    auto stream = std::make_shared<DigestStream>(std::move(file));
    auto sink = std::unique_ptr<FileSink>(new FileSink(path, std::move(stream)));
    auto writer = arrow::ipc::MakeFileWriter(sink->stream_, schema, WriteOptions());
    if (!writer.ok()) {
      (void)sink->stream_->Abort();
      (void)fs.DeleteFile(path);
      return sink->Annotate(writer.status());
    }
    sink->writer_ = *writer;
    return sink;
  }

  ~FileSink() {
    if (!stream_->closed()) (void)stream_->Abort();
  }

  arrow::Status Write(const arrow::RecordBatch& batch) {
    rows_ += batch.num_rows();
    ++batches_;
    return Annotate(writer_->WriteRecordBatch(batch));
  }

  /// Writes the footer and closes the stream (which makes the file durable).
  arrow::Status Finish() {
    ARROW_RETURN_NOT_OK(Annotate(writer_->Close()));
    return Annotate(stream_->Close());
  }

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  int64_t batches() const { return batches_; }
  const FileDigest& digest() const { return stream_->digest(); }

 private:
  FileSink(std::string path, std::shared_ptr<DigestStream> stream)
      : path_(std::move(path)), stream_(std::move(stream)) {}

  arrow::Status Annotate(arrow::Status st) const {
    if (st.ok()) return st;
    return st.WithMessage("Cannot write fragment '", path_, "': ", st.message());
  }

  std::string path_;
  std::shared_ptr<DigestStream> stream_;
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  int64_t rows_ = 0;
  int64_t batches_ = 0;
};

// Writes the coalescer's fragments as files, one dictionary per column and file.
class FragmentWriter {
 public:
  FragmentWriter(io::FileSystem& fs, std::string table_dir,
                 std::shared_ptr<arrow::Schema> schema,
                 const FragmentWriteOptions& options)
      : fs_(fs),
        table_dir_(std::move(table_dir)),
        schema_(std::move(schema)),
        coalescer_(
            options,
            [this](std::shared_ptr<arrow::RecordBatch> batch) {
              return WriteBatch(std::move(batch));
            },
            [this] { return FinishFile(); }) {}

  ~FragmentWriter() {
    if (!done_) Abort();
  }

  arrow::Status Add(const std::shared_ptr<arrow::RecordBatch>& batch) {
    return coalescer_.Add(batch);
  }

  arrow::Result<std::vector<WrittenFragment>> Finish() {
    ARROW_RETURN_NOT_OK(coalescer_.Finish());
    if (!written_.empty()) {
      ARROW_RETURN_NOT_OK(fs_.SyncDir(io::JoinPath(table_dir_, std::string(kDataDir))));
    }
    done_ = true;
    return written_;
  }

  /// Removes every file written so far (best effort: we are already failing).
  void Abort() {
    done_ = true;
    if (sink_) {
      std::string path = sink_->path();
      sink_.reset();
      (void)fs_.DeleteFile(path);
    }
    for (const auto& fragment : written_) {
      (void)fs_.DeleteFile(io::JoinPath(table_dir_, fragment.path));
    }
    written_.clear();
  }

 private:
  arrow::Status WriteBatch(std::shared_ptr<arrow::RecordBatch> batch) {
    ARROW_ASSIGN_OR_RAISE(auto extended, ExtendDictionaries(batch));
    if (extended == nullptr) {
      // Cannot extend the file's dictionaries (value type the unifier does not support,
      // or the index type overflows): the batch starts a new file with its own.
      ARROW_RETURN_NOT_OK(FinishFile());
      ARROW_ASSIGN_OR_RAISE(extended, ExtendDictionaries(batch));
      if (extended == nullptr) return arrow::Status::Invalid("Cannot write dictionaries");
    }
    if (!sink_) {
      std::string relative = DataFilePath(io::RandomId() + ".arrow");
      ARROW_ASSIGN_OR_RAISE(
          sink_, FileSink::Open(fs_, io::JoinPath(table_dir_, relative), schema_));
      sink_relative_ = relative;
    }
    return sink_->Write(*extended);
  }

  // The IPC file format allows one dictionary per field plus deltas that append to it.
  // Returns `batch` with each top-level dictionary column rewritten against a dictionary
  // that extends the one already in the file (unified, indices transposed), or nullptr if
  // that is impossible. Changing dictionaries nested inside other types are not
  // rewritten: the IPC writer rejects them with Invalid.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> ExtendDictionaries(
      const std::shared_ptr<arrow::RecordBatch>& batch) {
    std::vector<std::shared_ptr<arrow::Array>> columns = batch->columns();
    std::map<int, std::shared_ptr<arrow::Array>> updated = dictionaries_;
    bool changed = false;
    for (int i = 0; i < batch->num_columns(); ++i) {
      if (columns[i]->type_id() != arrow::Type::DICTIONARY) continue;
      const auto& array = static_cast<const arrow::DictionaryArray&>(*columns[i]);
      const auto& type = static_cast<const arrow::DictionaryType&>(*array.type());
      auto it = dictionaries_.find(i);
      std::shared_ptr<arrow::Array> old =
          it == dictionaries_.end() ? nullptr : it->second;
      if (old && (array.dictionary() == old || array.dictionary()->Equals(*old)))
        continue;
      auto unifier = arrow::DictionaryUnifier::Make(type.value_type());
      if (!unifier.ok()) {
        if (old && !IsPrefix(*old, *array.dictionary())) return nullptr;
        updated[i] = array.dictionary();
        continue;
      }
      // Unifying the file's dictionary first keeps it as the prefix of the result.
      if (old) ARROW_RETURN_NOT_OK((*unifier)->Unify(*old));
      std::shared_ptr<arrow::Buffer> transpose;
      ARROW_RETURN_NOT_OK((*unifier)->Unify(*array.dictionary(), &transpose));
      std::shared_ptr<arrow::Array> dictionary;
      if (!(*unifier)->GetResultWithIndexType(type.index_type(), &dictionary).ok()) {
        return nullptr;  // the indices cannot address the unified dictionary
      }
      ARROW_ASSIGN_OR_RAISE(columns[i], array.Transpose(array.type(), dictionary,
                                                        transpose->data_as<int32_t>()));
      updated[i] = std::move(dictionary);
      changed = true;
    }
    dictionaries_ = std::move(updated);
    if (!changed) return batch;
    return arrow::RecordBatch::Make(batch->schema(), batch->num_rows(),
                                    std::move(columns));
  }

  static bool IsPrefix(const arrow::Array& prefix, const arrow::Array& array) {
    return prefix.length() <= array.length() &&
           array.Slice(0, prefix.length())->Equals(prefix);
  }

  arrow::Status FinishFile() {
    if (!sink_) return arrow::Status::OK();
    arrow::Status st = sink_->Finish();
    // Once Finish was attempted the file is ours to clean up as a written one.
    written_.push_back(
        {sink_relative_, sink_->rows(), sink_->digest(), sink_->batches()});
    sink_.reset();
    dictionaries_.clear();
    return st;
  }

  io::FileSystem& fs_;
  const std::string table_dir_;
  const std::shared_ptr<arrow::Schema> schema_;
  BatchCoalescer coalescer_;

  std::unique_ptr<FileSink> sink_;
  std::string sink_relative_;
  // Top-level dictionary columns: the dictionary written to the current file so far.
  std::map<int, std::shared_ptr<arrow::Array>> dictionaries_;
  std::vector<WrittenFragment> written_;
  bool done_ = false;
};

arrow::Status SchemaMismatch(const arrow::Schema& expected, const arrow::Schema& got) {
  return arrow::Status::Invalid(
      "Data schema does not match the table schema.\nTable schema:\n",
      expected.ToString(), "\nData schema:\n", got.ToString());
}

arrow::Status Corrupt(const char* kind, const std::string& path,
                      const arrow::Status& st) {
  return WithErrorKind(
      arrow::Status::Invalid("Corrupt ", kind, " file '", path, "': ", st.message()),
      ErrorKind::kCorruption);
}

// Reads every batch of an IPC file, validated; errors are Invalid naming `path`.
arrow::Result<std::vector<std::shared_ptr<arrow::RecordBatch>>> ReadAllBatches(
    const std::string& path, const std::shared_ptr<arrow::io::RandomAccessFile>& file,
    const arrow::Schema& expected_schema, const char* kind) {
  // Arrow's reader checks the magic at the end of the file only: a file whose head was
  // overwritten would otherwise be read from its footer alone.
  static constexpr std::string_view kMagic = "ARROW1";
  auto head = file->ReadAt(0, static_cast<int64_t>(kMagic.size()));
  if (!head.ok()) return Corrupt(kind, path, head.status());
  if (std::string_view(reinterpret_cast<const char*>((*head)->data()),
                       static_cast<size_t>((*head)->size())) != kMagic) {
    return WithErrorKind(arrow::Status::Invalid("Corrupt ", kind, " file '", path,
                                                "': it does not start with the Arrow "
                                                "IPC file magic 'ARROW1'"),
                         ErrorKind::kCorruption);
  }
  auto reader_result =
      arrow::ipc::RecordBatchFileReader::Open(file, FragmentReadOptions());
  if (!reader_result.ok()) return Corrupt(kind, path, reader_result.status());
  auto reader = *reader_result;
  if (!reader->schema()->Equals(expected_schema, /*check_metadata=*/false)) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt ", kind, " file '", path,
                               "': its schema does not match the manifest.\nExpected:\n",
                               expected_schema.ToString(), "\nFile has:\n",
                               reader->schema()->ToString()),
        ErrorKind::kCorruption);
  }
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  batches.reserve(reader->num_record_batches());
  for (int i = 0; i < reader->num_record_batches(); ++i) {
    auto batch = reader->ReadRecordBatch(i);
    if (!batch.ok()) return Corrupt(kind, path, batch.status());
    batches.push_back(std::move(batch).ValueUnsafe());
  }
  return batches;
}

}  // namespace

arrow::ipc::IpcReadOptions FragmentReadOptions() {
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.use_threads = false;
  // Files we write are aligned, so this copies nothing for them; a corrupt or foreign
  // file with misaligned buffers is copied rather than handing out misaligned pointers.
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  return options;
}

arrow::Status BatchCoalescer::Validate(const FragmentWriteOptions& options) {
  if (options.max_rows_per_fragment < 1 ||
      options.max_rows_per_fragment > kMaxFragmentRows) {
    return arrow::Status::Invalid("max_rows_per_fragment must be in [1, 2^32], got ",
                                  options.max_rows_per_fragment);
  }
  if (options.min_rows_per_batch < 1) {
    return arrow::Status::Invalid("min_rows_per_batch must be at least 1, got ",
                                  options.min_rows_per_batch);
  }
  if (options.max_bytes_per_batch < 1) {
    return arrow::Status::Invalid("max_bytes_per_batch must be at least 1, got ",
                                  options.max_bytes_per_batch);
  }
  return arrow::Status::OK();
}

namespace {

// Bytes of the buffers a (possibly sliced) batch references: what concatenating it
// copies.
int64_t ReferencedBytes(const arrow::RecordBatch& batch) {
  auto bytes = arrow::util::ReferencedBufferSize(batch);
  return bytes.ok() ? *bytes : arrow::util::TotalBufferSize(batch);
}

}  // namespace

arrow::Status BatchCoalescer::Add(const std::shared_ptr<arrow::RecordBatch>& batch) {
  int64_t offset = 0;
  while (offset < batch->num_rows()) {
    int64_t room = options_.max_rows_per_fragment - fragment_rows_ - pending_rows_;
    int64_t take = std::min(room, batch->num_rows() - offset);
    auto piece =
        offset == 0 && take == batch->num_rows() ? batch : batch->Slice(offset, take);
    int64_t bytes = ReferencedBytes(*piece);
    // Concatenating must stay within the byte bound (and so within 32-bit offsets).
    if (!pending_.empty() && pending_bytes_ + bytes > options_.max_bytes_per_batch) {
      ARROW_RETURN_NOT_OK(Flush());
    }
    pending_.push_back(std::move(piece));
    pending_rows_ += take;
    pending_bytes_ += bytes;
    offset += take;
    if (pending_rows_ >= options_.min_rows_per_batch ||
        pending_bytes_ >= options_.max_bytes_per_batch) {
      ARROW_RETURN_NOT_OK(Flush());
    }
    if (fragment_rows_ + pending_rows_ == options_.max_rows_per_fragment) {
      ARROW_RETURN_NOT_OK(Flush());
      fragment_rows_ = 0;
      ARROW_RETURN_NOT_OK(end_fragment_());
    }
  }
  return arrow::Status::OK();
}

arrow::Status BatchCoalescer::Finish() {
  ARROW_RETURN_NOT_OK(Flush());
  if (fragment_rows_ == 0) return arrow::Status::OK();
  fragment_rows_ = 0;
  return end_fragment_();
}

arrow::Status BatchCoalescer::Flush() {
  if (pending_.empty()) return arrow::Status::OK();
  std::shared_ptr<arrow::RecordBatch> batch;
  if (pending_.size() == 1) {
    batch = std::move(pending_[0]);
  } else {
    // Concatenate also unifies differing dictionaries of dictionary columns.
    ARROW_ASSIGN_OR_RAISE(batch, arrow::ConcatenateRecordBatches(pending_));
  }
  pending_.clear();
  fragment_rows_ += pending_rows_;
  pending_rows_ = 0;
  pending_bytes_ = 0;
  return emit_(std::move(batch));
}

arrow::Result<std::vector<WrittenFragment>> WriteFragments(
    io::FileSystem& fs, const std::string& table_dir,
    const std::shared_ptr<arrow::Schema>& schema, arrow::RecordBatchReader* reader,
    const FragmentWriteOptions& options) {
  ARROW_RETURN_NOT_OK(BatchCoalescer::Validate(options));
  if (!reader->schema()->Equals(*schema, /*check_metadata=*/false)) {
    return SchemaMismatch(*schema, *reader->schema());
  }
  // Removes its files unless finished.
  FragmentWriter writer(fs, table_dir, schema, options);
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) break;
    if (!batch->schema()->Equals(*schema, /*check_metadata=*/false)) {
      return SchemaMismatch(*schema, *batch->schema());
    }
    // Cheap structural checks (the schema of a batch does not prove its columns match
    // it); data from outside the process must not be persisted malformed.
    arrow::Status valid = batch->Validate();
    if (!valid.ok())
      return arrow::Status::Invalid("Invalid input batch: ", valid.message());
    if (batch->num_rows() == 0) continue;
    ARROW_RETURN_NOT_OK(writer.Add(batch));
  }
  return writer.Finish();
}

std::shared_ptr<FragmentData> FragmentData::Make(
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches) {
  auto data = std::make_shared<FragmentData>();
  data->batch_offsets.reserve(batches.size() + 1);
  data->columns.reserve(batches.size());
  int64_t offset = 0;
  for (const auto& batch : batches) {
    data->batch_offsets.push_back(offset);
    offset += batch->num_rows();
    data->columns.push_back(batch->columns());
  }
  data->batch_offsets.push_back(offset);
  data->batches = std::move(batches);
  return data;
}

arrow::Result<std::shared_ptr<FragmentData>> OpenFragmentFile(
    io::FileSystem& fs, const std::string& path,
    const std::shared_ptr<arrow::Schema>& schema, int64_t expected_rows,
    const std::optional<FileDigest>& digest) {
  ARROW_ASSIGN_OR_RAISE(auto file, fs.OpenInput(path));
  if (digest) {
    // The size alone is free to check; the CRC means reading every byte (VerifyFile).
    ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
    if (size != digest->size) {
      return WithErrorKind(
          arrow::Status::Invalid("Corrupt fragment file '", path, "': it has ", size,
                                 " bytes, the manifest says ", digest->size),
          ErrorKind::kCorruption);
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto batches, ReadAllBatches(path, file, *schema, "fragment"));
  int64_t rows = 0;
  for (const auto& batch : batches) rows += batch->num_rows();
  // Row count before the costly validation: a wrong count is the cheap, common mismatch.
  if (rows != expected_rows) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt fragment file '", path, "': it has ", rows,
                               " rows, the manifest says ", expected_rows),
        ErrorKind::kCorruption);
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    arrow::Status st = batches[i]->ValidateFull();
    if (!st.ok()) {
      return WithErrorKind(
          arrow::Status::Invalid("Corrupt fragment file '", path, "': record batch ", i,
                                 ": ", st.message()),
          ErrorKind::kCorruption);
    }
  }
  auto data = FragmentData::Make(std::move(batches));
  data->source = std::move(file);
  return data;
}

namespace {

arrow::Status DescriptionMismatch(const std::string& path, const std::string& what) {
  return arrow::Status::Invalid("Fragment file '", path,
                                "' does not match its description: ", what);
}

}  // namespace

arrow::Status CheckDescribedFragment(const WrittenFragment& described,
                                     const arrow::Schema& schema,
                                     const FragmentFacts& found) {
  auto differ = [&](const std::string& what, int64_t has, int64_t says) {
    return DescriptionMismatch(described.path, "it has " + std::to_string(has) + " " +
                                                   what + ", the description says " +
                                                   std::to_string(says));
  };
  if (found.size && described.digest && *found.size != described.digest->size) {
    return differ("bytes", *found.size, described.digest->size);
  }
  if (found.schema != nullptr &&
      !found.schema->Equals(schema, /*check_metadata=*/false)) {
    return DescriptionMismatch(described.path,
                               "its schema is\n" + found.schema->ToString() +
                                   "\nthe description says\n" + schema.ToString());
  }
  if (found.num_batches && *found.num_batches != described.num_batches) {
    return differ("record batches", *found.num_batches, described.num_batches);
  }
  if (found.rows && *found.rows != described.physical_rows) {
    return differ("rows", *found.rows, described.physical_rows);
  }
  return arrow::Status::OK();
}

arrow::Status DescribedFragmentMissing(const std::string& path,
                                       const std::string& location) {
  return arrow::Status::Invalid(
      "Fragment file '", path, "' does not exist in the table at '", location,
      "': it was written for another table, or removed by cleanup_old_versions");
}

arrow::Status CheckFragmentFile(io::FileSystem& fs, const std::string& path,
                                const WrittenFragment& described,
                                const arrow::Schema& schema) {
  ARROW_ASSIGN_OR_RAISE(auto file, fs.OpenInput(path));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  // The size first: free, and what a truncated or foreign file gets wrong.
  ARROW_RETURN_NOT_OK(CheckDescribedFragment(described, schema,
                                             {.size = size,
                                              .schema = nullptr,
                                              .num_batches = std::nullopt,
                                              .rows = std::nullopt}));
  static constexpr std::string_view kMagic = "ARROW1";
  ARROW_ASSIGN_OR_RAISE(auto head, file->ReadAt(0, static_cast<int64_t>(kMagic.size())));
  if (std::string_view(reinterpret_cast<const char*>(head->data()),
                       static_cast<size_t>(head->size())) != kMagic) {
    return DescriptionMismatch(described.path, "it is not an Arrow IPC file");
  }
  auto reader = arrow::ipc::RecordBatchFileReader::Open(file, FragmentReadOptions());
  if (!reader.ok()) {
    return DescriptionMismatch(described.path, reader.status().message());
  }
  // Schema and batch count from the footer before rows are counted from every batch's
  // metadata.
  ARROW_RETURN_NOT_OK(
      CheckDescribedFragment(described, schema,
                             {.size = std::nullopt,
                              .schema = (*reader)->schema(),
                              .num_batches = (*reader)->num_record_batches(),
                              .rows = std::nullopt}));
  auto counted = (*reader)->CountRows();
  if (!counted.ok())
    return DescriptionMismatch(described.path, counted.status().message());
  return CheckDescribedFragment(described, schema,
                                {.size = std::nullopt,
                                 .schema = nullptr,
                                 .num_batches = std::nullopt,
                                 .rows = *counted});
}

namespace {

std::shared_ptr<arrow::Schema> DeletionSchema() {
  return arrow::schema({arrow::field("row", arrow::uint32(), /*nullable=*/false)});
}

}  // namespace

arrow::Result<FileDigest> WriteDeletionFile(io::FileSystem& fs, const std::string& path,
                                            const std::vector<uint32_t>& rows) {
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i] <= rows[i - 1]) {
      return arrow::Status::Invalid("Deleted rows must be strictly increasing: row ",
                                    rows[i], " at position ", i, " follows ",
                                    rows[i - 1]);
    }
  }
  arrow::UInt32Builder builder;
  ARROW_RETURN_NOT_OK(builder.AppendValues(rows));
  ARROW_ASSIGN_OR_RAISE(auto array, builder.Finish());
  auto batch = arrow::RecordBatch::Make(DeletionSchema(), array->length(), {array});

  ARROW_ASSIGN_OR_RAISE(auto sink, arrow::io::BufferOutputStream::Create());
  ARROW_ASSIGN_OR_RAISE(
      auto writer, arrow::ipc::MakeFileWriter(sink, DeletionSchema(), WriteOptions()));
  ARROW_RETURN_NOT_OK(writer->WriteRecordBatch(*batch));
  ARROW_RETURN_NOT_OK(writer->Close());
  ARROW_ASSIGN_OR_RAISE(auto buffer, sink->Finish());

  ARROW_RETURN_NOT_OK(
      fs.CreateExclusive(path, {buffer->data(), static_cast<size_t>(buffer->size())}));
  return FileDigest{buffer->size(),
                    Crc32c(buffer->data(), static_cast<size_t>(buffer->size()))};
}

arrow::Status CheckDigest(const arrow::Buffer& bytes, const FileDigest& digest,
                          const std::string& path) {
  if (bytes.size() != digest.size) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt file '", path, "': it has ", bytes.size(),
                               " bytes, the manifest says ", digest.size),
        ErrorKind::kCorruption);
  }
  const uint32_t crc = Crc32c(bytes.data(), static_cast<size_t>(bytes.size()));
  if (crc != digest.crc32c) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt file '", path, "': checksum mismatch (crc32c ",
                               Crc32cHex(crc), ", the manifest says ",
                               Crc32cHex(digest.crc32c), ")"),
        ErrorKind::kCorruption);
  }
  return arrow::Status::OK();
}

arrow::Status VerifyFile(io::FileSystem& fs, const std::string& path,
                         const FileDigest& digest) {
  ARROW_ASSIGN_OR_RAISE(auto file, fs.OpenInput(path));
  ARROW_ASSIGN_OR_RAISE(int64_t size, file->GetSize());
  if (size != digest.size) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt file '", path, "': it has ", size,
                               " bytes, the manifest says ", digest.size),
        ErrorKind::kCorruption);
  }
  // In pieces: a fragment may be far larger than memory.
  constexpr int64_t kPiece = int64_t{8} << 20;
  uint32_t crc = 0;
  for (int64_t offset = 0; offset < size; offset += kPiece) {
    ARROW_ASSIGN_OR_RAISE(auto piece,
                          file->ReadAt(offset, std::min(kPiece, size - offset)));
    crc = Crc32c(piece->data(), static_cast<size_t>(piece->size()), crc);
  }
  if (crc != digest.crc32c) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt file '", path, "': checksum mismatch (crc32c ",
                               Crc32cHex(crc), ", the manifest says ",
                               Crc32cHex(digest.crc32c), ")"),
        ErrorKind::kCorruption);
  }
  return arrow::Status::OK();
}

arrow::Result<std::vector<uint32_t>> ReadDeletionFile(
    io::FileSystem& fs, const std::string& path, int64_t physical_rows,
    int64_t expected_count, const std::optional<FileDigest>& digest) {
  ARROW_ASSIGN_OR_RAISE(
      auto data, digest ? fs.ReadFileOfSize(path, digest->size) : fs.ReadFile(path));
  if (digest) ARROW_RETURN_NOT_OK(CheckDigest(*data, *digest, path));
  auto file = std::make_shared<arrow::io::BufferReader>(data);
  ARROW_ASSIGN_OR_RAISE(auto batches,
                        ReadAllBatches(path, file, *DeletionSchema(), "deletion"));
  auto bad = [&](auto&&... args) {
    return WithErrorKind(
        arrow::Status::Invalid("Corrupt deletion file '", path, "': ", args...),
        ErrorKind::kCorruption);
  };
  std::vector<uint32_t> rows;
  for (const auto& batch : batches) {
    arrow::Status st = batch->ValidateFull();
    if (!st.ok()) return Corrupt("deletion", path, st);
    const auto& column = static_cast<const arrow::UInt32Array&>(*batch->column(0));
    if (column.null_count() != 0) return bad("contains nulls");
    for (int64_t i = 0; i < column.length(); ++i) {
      uint32_t row = column.Value(i);
      if (!rows.empty() && row <= rows.back()) {
        return bad("rows are not strictly increasing at position ", rows.size(), " (",
                   row, " after ", rows.back(), ")");
      }
      if (static_cast<int64_t>(row) >= physical_rows) {
        return bad("row ", row, " is beyond the fragment's ", physical_rows, " rows");
      }
      rows.push_back(row);
    }
  }
  if (static_cast<int64_t>(rows.size()) != expected_count) {
    return bad("it holds ", rows.size(), " rows, the manifest says ", expected_count);
  }
  return rows;
}

}  // namespace riffledb::format
