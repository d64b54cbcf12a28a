using TorchSharp;
using static TorchSharp.torch;

namespace MedVlp.Losses;

/// <summary>
/// A weighted sum of losses over one input: <c>total = sum_k w_k * L_k(select_k(input))</c>.
/// Reports every part unweighted under its name, and a part's own terms as <c>name/term</c>.
/// </summary>
/// <typeparam name="TInput">The input shared by all parts (each part selects what it needs).</typeparam>
/// <example>
/// <code>
/// var mflag = new CompositeLoss&lt;MFlagBatch&gt;("mflag")
///     .Add("orth", new OrthogonalityLoss(), b =&gt; b.ImageFeatures)
///     .Add("align", new AlignmentLoss(), b =&gt; new EmbeddingPair(b.ImageEmbeddings, b.TextEmbeddings));
/// </code>
/// </example>
public sealed class CompositeLoss<TInput> : VlpLoss<TInput>
{
    private readonly List<Part> parts = [];

    /// <summary>Creates an empty composite.</summary>
    /// <param name="name">The module name.</param>
    public CompositeLoss(string name = "composite")
        : base(name)
    {
    }

    /// <summary>The names of the parts, in the order they were added.</summary>
    public IReadOnlyList<string> PartNames => parts.ConvertAll(p => p.Name);

    /// <summary>Adds a part that takes the composite's input as it is.</summary>
    /// <param name="name">The part's name (letters, digits, '_' or '-'; unique).</param>
    /// <param name="loss">The loss.</param>
    /// <param name="weight">Its weight in the total.</param>
    /// <returns>This composite.</returns>
    public CompositeLoss<TInput> Add(string name, VlpLoss<TInput> loss, double weight = 1.0) => Add(name, loss, static x => x, weight);

    /// <summary>Adds a part that takes what <paramref name="select"/> picks from the composite's input.</summary>
    /// <typeparam name="TPart">The part's input type.</typeparam>
    /// <param name="name">The part's name (letters, digits, '_' or '-'; unique).</param>
    /// <param name="loss">The loss.</param>
    /// <param name="select">Picks the part's input from the composite's input.</param>
    /// <param name="weight">Its weight in the total.</param>
    /// <returns>This composite.</returns>
    public CompositeLoss<TInput> Add<TPart>(string name, VlpLoss<TPart> loss, Func<TInput, TPart> select, double weight = 1.0)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(select);
        if (!name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
        {
            throw new ArgumentException($"Loss part name '{name}' may only hold ASCII letters, digits, '_' and '-'.", nameof(name));
        }

        if (parts.Exists(p => p.Name == name))
        {
            throw new ArgumentException($"A loss part named '{name}' was already added.", nameof(name));
        }

        if (!double.IsFinite(weight))
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "The weight must be a finite number.");
        }

        register_module(name, loss);
        parts.Add(new Part(name, weight, input => loss.call(select(input))));
        return this;
    }

    /// <summary>The current weight of a part.</summary>
    /// <param name="name">The part's name.</param>
    /// <returns>The weight.</returns>
    public double GetWeight(string name) => Find(name).Weight;

    /// <summary>Changes a part's weight (for example between training stages); 0 keeps it reported but out of the total.</summary>
    /// <param name="name">The part's name.</param>
    /// <param name="weight">The new weight.</param>
    public void SetWeight(string name, double weight)
    {
        if (!double.IsFinite(weight))
        {
            throw new ArgumentOutOfRangeException(nameof(weight), weight, "The weight must be a finite number.");
        }

        Find(name).Weight = weight;
    }

    /// <inheritdoc />
    protected override LossOutput ComputeLoss(TInput input)
    {
        if (parts.Count == 0)
        {
            throw new InvalidOperationException($"The composite loss '{GetName()}' has no parts; add some with Add(...).");
        }

        Tensor? total = null;
        var terms = new List<KeyValuePair<string, Tensor>>();
        foreach (var part in parts)
        {
            // The part's own scope moved its output here; this composite's scope owns it now.
            var output = part.Evaluate(input);
            terms.Add(new(part.Name, output.Total));
            if (output.Terms.Count > 1 || !output.Terms.ContainsKey("loss"))
            {
                foreach (var (termName, value) in output.Terms)
                {
                    if (!ReferenceEquals(value, output.Total))
                    {
                        terms.Add(new($"{part.Name}/{termName}", value));
                    }
                }
            }

            var weighted = part.Weight == 1.0 ? output.Total : output.Total * part.Weight;
            total = total is null ? weighted : total + weighted;
        }

        return new LossOutput(total!, terms);
    }

    private Part Find(string name) =>
        parts.Find(p => p.Name == name) ?? throw new KeyNotFoundException($"The composite loss '{GetName()}' has no part named '{name}'.");

    private sealed class Part(string name, double weight, Func<TInput, LossOutput> evaluate)
    {
        public string Name { get; } = name;

        public double Weight { get; set; } = weight;

        public Func<TInput, LossOutput> Evaluate { get; } = evaluate;
    }
}
