using System.Text.Json;
using MedVlp.Backbones.Onnx;
using MedVlp.Modeling;
using MedVlp.Serialization;
using MedVlp.Text;
using MedVlp.Weights;
using static TorchSharp.torch;

namespace MedVlp.Backbones;

/// <summary>Options of <see cref="PretrainedBert.Load"/>.</summary>
public sealed class PretrainedBertOptions
{
    /// <summary>Attention heads per layer, when neither a <c>config.json</c> says it nor the ONNX check can find it
    /// (weights do not carry it). Null: from <c>config.json</c>, else found by the ONNX Runtime check.</summary>
    public int? NumAttentionHeads { get; init; }

    /// <summary>For an ONNX model: run it once on ONNX Runtime and require MedVlp's BERT with the read weights to give the
    /// same hidden states (largest difference at most <see cref="OnnxTolerance"/>). Default true.</summary>
    public bool VerifyOnnx { get; init; } = true;

    /// <summary>The largest absolute difference of the ONNX check (float32). Default 1e-3.</summary>
    public double OnnxTolerance { get; init; } = 1e-3;
}

/// <summary>
/// A pretrained BERT-family text encoder read from files, to serve as a frozen language model (M-FLAG's
/// <c>lm_model</c>) in MedVlp's TorchSharp <see cref="BertModel"/>, with its own WordPiece tokenizer. Accepted:
/// <list type="bullet">
/// <item>an <c>.onnx</c> file exported from a Hugging Face BERT (for example all-MiniLM-L6-v2): its initializers are read
/// through <see cref="OnnxInitializers"/>, the sizes from the tensors' shapes (and a <c>config.json</c> beside the file
/// when there is one), and the result is checked against ONNX Runtime on a probe sentence, which also finds the number of
/// attention heads when nothing states it; <c>vocab.txt</c> (or <c>tokenizer.json</c>) must lie beside the file or one
/// folder up;</item>
/// <item>a Hugging Face folder: <c>config.json</c> (a BERT configuration), weights in <c>model.safetensors</c>,
/// <c>pytorch_model.bin</c> or <c>model.onnx</c> / <c>onnx/model.onnx</c>, and <c>vocab.txt</c> or <c>tokenizer.json</c>
/// (<c>tokenizer_config.json</c>'s <c>do_lower_case</c> is honoured).</item>
/// </list>
/// Weight names follow the <c>hf-bert</c> layout. Dispose it to free the weights read.
/// </summary>
public sealed class PretrainedBert : IDisposable
{
    private static readonly JsonSerializerOptions HfJson = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };
    private static readonly int[] HeadWidths = [64, 32, 128, 16]; // BERT-base/large, MiniLM, ... in order of likelihood
    private readonly Dictionary<string, Tensor> _weights;

    private PretrainedBert(string path, string format, BertConfig config, WordPieceTextTokenizer tokenizer, Dictionary<string, Tensor> weights, double? onnxDifference)
    {
        Path = path;
        Format = format;
        Config = config;
        Tokenizer = tokenizer;
        _weights = weights;
        OnnxMaxDifference = onnxDifference;
    }

    /// <summary>The file or folder it was read from.</summary>
    public string Path { get; }

    /// <summary>Where the weights came from: <c>onnx</c>, <c>safetensors</c> or <c>pytorch</c>.</summary>
    public string Format { get; }

    /// <summary>The sizes (dropout as configured; a frozen encoder runs in eval mode).</summary>
    public BertConfig Config { get; }

    /// <summary>The model's own tokenizer.</summary>
    public WordPieceTextTokenizer Tokenizer { get; }

    /// <summary>For an ONNX model checked against ONNX Runtime: the largest absolute difference of the hidden states; else null.</summary>
    public double? OnnxMaxDifference { get; }

    /// <summary>Reads a pretrained BERT (see the class remarks for the accepted layouts).</summary>
    /// <param name="path">An <c>.onnx</c> file or a Hugging Face folder.</param>
    /// <param name="options">Options; null for the defaults.</param>
    /// <exception cref="FileNotFoundException">Nothing exists at <paramref name="path"/>, or a needed file (vocabulary, weights) is missing.</exception>
    /// <exception cref="ModelFormatException">The files are not a BERT MedVlp can run (the message names the file and the field).</exception>
    public static PretrainedBert Load(string path, PretrainedBertOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        options ??= new PretrainedBertOptions();
        if (options.NumAttentionHeads is < 1)
        {
            throw new ArgumentException($"NumAttentionHeads must be positive, got {options.NumAttentionHeads}.", nameof(options));
        }

        string folder, weightsPath;
        if (Directory.Exists(path))
        {
            folder = path;
            weightsPath = new[] { "model.safetensors", "pytorch_model.bin", "model.onnx", System.IO.Path.Combine("onnx", "model.onnx") }
                .Select(f => System.IO.Path.Combine(path, f)).FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException($"{path}: no weights found; expected model.safetensors, pytorch_model.bin, model.onnx or onnx/model.onnx in the folder.", path);
        }
        else if (File.Exists(path))
        {
            if (!path.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase))
            {
                throw new ModelFormatException(path, null, "expected an .onnx file or a Hugging Face folder (config.json, weights, vocab.txt).");
            }

            folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
            weightsPath = path;
        }
        else
        {
            throw new FileNotFoundException($"The text model {path} does not exist (expected an .onnx file or a Hugging Face folder).", path);
        }

        var onnx = weightsPath.EndsWith(".onnx", StringComparison.OrdinalIgnoreCase);
        // An ONNX file finds its vocabulary (and config.json) beside it or one folder up (Hugging Face Optimum's onnx/ sub-folder).
        var weightsFolder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(weightsPath))!;
        string?[] near = onnx ? [weightsFolder, folder, System.IO.Path.GetDirectoryName(weightsFolder)] : [folder];
        string? Find(string name) => near.OfType<string>().Distinct(StringComparer.Ordinal).Select(d => System.IO.Path.Combine(d, name)).FirstOrDefault(File.Exists);
        var configPath = Find("config.json");
        if (!onnx && configPath is null)
        {
            throw new FileNotFoundException($"{path}: config.json is missing; a Hugging Face BERT folder needs it (sizes, attention heads).", System.IO.Path.Combine(folder, "config.json"));
        }

        var tokenizer = ReadTokenizer(path, Find("vocab.txt"), Find("tokenizer.json"), Find("tokenizer_config.json"));
        var stated = configPath is null ? null : ReadConfig(configPath);
        var weights = onnx ? OnnxInitializers.Load(weightsPath) : WeightFile.Load(weightsPath, ScalarType.Float32);
        try
        {
            var layout = WeightLayouts.Get("hf-bert");
            var named = weights.Where(kv => !layout.IsIgnored(kv.Key)).ToDictionary(kv => layout.Map(kv.Key), kv => kv.Value, StringComparer.Ordinal);
            var config = InferConfig(weightsPath, named, stated, options.NumAttentionHeads);
            if (tokenizer.VocabularySize > config.VocabSize)
            {
                throw new ModelFormatException(path, "vocab.txt", $"holds {tokenizer.VocabularySize} tokens but the word embedding has {config.VocabSize} rows; the vocabulary is not this model's.");
            }

            double? difference = null;
            if (onnx && options.VerifyOnnx)
            {
                (config, difference) = CheckAgainstOnnxRuntime(weightsPath, weights, config, tokenizer, stated is not null || options.NumAttentionHeads is not null, options.OnnxTolerance);
            }

            return new PretrainedBert(path, onnx ? "onnx" : weightsPath.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase) ? "safetensors" : "pytorch",
                config, tokenizer, weights, difference);
        }
        catch
        {
            foreach (var t in weights.Values)
            {
                t.Dispose();
            }

            throw;
        }
    }

    /// <summary>A new <see cref="BertModel"/> of <see cref="Config"/> with these weights.</summary>
    public BertModel CreateModel(Device? device = null)
    {
        var model = new BertModel(Config, device);
        try
        {
            LoadInto(model);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Copies the weights into <paramref name="model"/> (strict: every tensor must fit).</summary>
    /// <exception cref="ModelFormatException">The model's sizes differ from <see cref="Config"/>.</exception>
    public WeightLoadReport LoadInto(BertModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        ObjectDisposedException.ThrowIf(_weights.Count == 0, this);
        return WeightLoader.Load(model, _weights, new WeightLoadOptions { Layout = "hf-bert", ConvertDType = true }, Path);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _weights.Values)
        {
            t.Dispose();
        }

        _weights.Clear();
    }

    private static WordPieceTextTokenizer ReadTokenizer(string source, string? vocab, string? tokenizerJson, string? tokenizerConfig)
    {
        var lower = true;
        if (tokenizerConfig is not null)
        {
            try
            {
                using var doc = JsonDocument.Parse(File.ReadAllBytes(tokenizerConfig));
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("do_lower_case", out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False)
                {
                    lower = v.GetBoolean();
                }
            }
            catch (JsonException ex)
            {
                throw new ModelFormatException(tokenizerConfig, null, $"not valid JSON ({ex.Message}).", ex);
            }
        }

        if (vocab is not null)
        {
            return WordPieceTextTokenizer.FromVocabularyFile(vocab, new WordPieceTokenizerOptions { LowerCase = lower });
        }

        return tokenizerJson is not null
            ? WordPieceTextTokenizer.FromTokenizerJson(tokenizerJson)
            : throw new FileNotFoundException($"{source}: no vocab.txt or tokenizer.json beside the model; the text model needs its own WordPiece vocabulary.", vocab);
    }

    private static BertConfig ReadConfig(string path)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ModelFormatException(path, "$", "expected a JSON object.");
            }

            if (root.TryGetProperty("model_type", out var type) && type.GetString() is { } t && t is not ("bert" or "roberta" or "distilbert") && !t.Contains("bert", StringComparison.OrdinalIgnoreCase))
            {
                throw new ModelFormatException(path, "model_type", $"is \"{t}\"; expected a BERT model (\"bert\").");
            }

            return root.Deserialize<BertConfig>(HfJson) ?? throw new ModelFormatException(path, "$", "holds null.");
        }
        catch (JsonException ex)
        {
            throw new ModelFormatException(path, ex.Path, $"not a Hugging Face BERT config.json ({ex.Message}).", ex);
        }
    }

    private static BertConfig InferConfig(string path, Dictionary<string, Tensor> w, BertConfig? stated, int? heads)
    {
        long[] Shape(string name) => w.TryGetValue(name, out var t) ? t.shape : throw new ModelFormatException(path, name, "is missing; expected a BERT encoder (Hugging Face BertModel names).");
        var words = Shape("embeddings.word_embeddings.weight");
        var positions = Shape("embeddings.position_embeddings.weight");
        var types = Shape("embeddings.token_type_embeddings.weight");
        var layers = 0;
        while (w.ContainsKey($"encoder.layer.{layers}.attention.self.query.bias"))
        {
            layers++;
        }

        if (layers == 0 || words.Length != 2)
        {
            throw new ModelFormatException(path, "encoder.layer.0", "no encoder layers found; expected a BERT encoder (Hugging Face BertModel names).");
        }

        var intermediate = Shape("encoder.layer.0.intermediate.dense.bias")[0];
        var hidden = (int)words[1];
        var config = (stated ?? new BertConfig()) with
        {
            VocabSize = (int)words[0],
            HiddenSize = hidden,
            NumHiddenLayers = layers,
            IntermediateSize = (int)intermediate,
            MaxPositionEmbeddings = (int)positions[0],
            TypeVocabSize = (int)types[0],
            NumAttentionHeads = heads ?? stated?.NumAttentionHeads ?? Math.Max(1, hidden / 64),
            AddPoolingLayer = w.ContainsKey("pooler.dense.weight"),
        };
        if (stated is not null && (stated.HiddenSize != hidden || stated.NumHiddenLayers != layers || stated.VocabSize != words[0]))
        {
            throw new ModelFormatException(path, "config.json", $"says hidden_size {stated.HiddenSize}, {stated.NumHiddenLayers} layers, vocab_size {stated.VocabSize}; the weights have {hidden}, {layers}, {words[0]}.");
        }

        try
        {
            config.Validate();
        }
        catch (ArgumentException ex)
        {
            throw new ModelFormatException(path, ex.ParamName, ex.Message, ex);
        }

        return config;
    }

    /// <summary>Runs the ONNX model and MedVlp's BERT on a probe sentence; with the head count unknown, tries the usual ones
    /// (head width 64, 32, 128, 16) and keeps the one that reproduces ONNX Runtime.</summary>
    private static (BertConfig Config, double Difference) CheckAgainstOnnxRuntime(string path, Dictionary<string, Tensor> weights, BertConfig config,
        WordPieceTextTokenizer tokenizer, bool headsKnown, double tolerance)
    {
        using var scope = NewDisposeScope();
        var batch = tokenizer.EncodeBatch(["the heart size is normal. no pleural effusion or pneumothorax.", "mild cardiomegaly"], 32);
        var ids = tensor(batch.Ids.ToArray(), [batch.BatchSize, batch.SequenceLength]);
        var mask = tensor(batch.AttentionMask.ToArray(), [batch.BatchSize, batch.SequenceLength]);
        Tensor reference;
        using (var session = new OnnxTextBackbone(path, new OnnxBackboneOptions { IntraOpThreads = 1 }))
        {
            reference = session.Forward(ids, mask);
        }

        var real = mask.unsqueeze(-1).to_type(ScalarType.Float32);
        var candidates = headsKnown
            ? [config.NumAttentionHeads]
            : HeadWidths.Where(d => config.HiddenSize % d == 0).Select(d => config.HiddenSize / d).Distinct().ToArray();
        var tried = new List<string>();
        foreach (var heads in candidates)
        {
            var candidate = config with { NumAttentionHeads = heads };
            using var model = new BertModel(candidate);
            var report = WeightLoader.Load(model, weights, new WeightLoadOptions { Layout = "hf-bert", ConvertDType = true }, path);
            if (!report.IsComplete)
            {
                throw new ModelFormatException(path, "initializers", $"do not fit a BERT of these sizes: {report.Describe()}.");
            }

            model.eval();
            double difference;
            using (no_grad())
            {
                difference = ((model.forward(ids, mask) - reference).abs() * real).max().item<float>();
            }

            if (difference <= tolerance)
            {
                return (candidate, difference);
            }

            tried.Add($"{heads} heads: {difference:G3}");
        }

        throw new ModelFormatException(path, "graph", $"MedVlp's BERT with the file's weights does not reproduce ONNX Runtime's hidden states within {tolerance:G3} ({string.Join("; ", tried)}); " +
            "the graph is not a plain Hugging Face BERT encoder, or its head count differs (set PretrainedBertOptions.NumAttentionHeads or put its config.json beside it).");
    }
}
