using MedVlp.Volumes;

namespace MedVlp.Training;

/// <summary>
/// The synthetic data a recipe architecture trains on for <c>medvlp train --synthetic N</c> when the built-in synthetic
/// brain MRIs do not fit it (<see cref="RecipeArchitecture.CreateSyntheticData"/>): volumes already passed through the
/// model's preprocessing (so a large set is held at the model's input size), their reports (empty for image-only
/// examples), a held-out set, and an optional evaluation of a model on the held-out set.
/// </summary>
public sealed record SyntheticTrainingSet
{
    /// <summary>Creates the set.</summary>
    /// <param name="train">Preprocessed training volumes.</param>
    /// <param name="trainReports">Their reports; empty for image-only examples.</param>
    /// <param name="heldOut">Preprocessed held-out volumes.</param>
    /// <param name="heldOutReports">Their reports.</param>
    /// <exception cref="ArgumentException">A report list does not match its volumes.</exception>
    public SyntheticTrainingSet(IReadOnlyList<Volume> train, IReadOnlyList<string> trainReports, IReadOnlyList<Volume> heldOut, IReadOnlyList<string> heldOutReports)
    {
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(trainReports);
        ArgumentNullException.ThrowIfNull(heldOut);
        ArgumentNullException.ThrowIfNull(heldOutReports);
        if (train.Count != trainReports.Count || heldOut.Count != heldOutReports.Count)
        {
            throw new ArgumentException($"Expected one report per volume; got {train.Count} training volumes with {trainReports.Count} reports and {heldOut.Count} held-out volumes with {heldOutReports.Count}.");
        }

        Train = train;
        TrainReports = trainReports;
        HeldOut = heldOut;
        HeldOutReports = heldOutReports;
    }

    /// <summary>Preprocessed training volumes (the model's input: pass them to the model without preprocessing again).</summary>
    public IReadOnlyList<Volume> Train { get; }

    /// <summary>The training reports; empty for image-only examples.</summary>
    public IReadOnlyList<string> TrainReports { get; }

    /// <summary>Preprocessed held-out volumes.</summary>
    public IReadOnlyList<Volume> HeldOut { get; }

    /// <summary>The held-out reports.</summary>
    public IReadOnlyList<string> HeldOutReports { get; }

    /// <summary>Per held-out example, named binary labels (for example which findings are present); null when unknown.</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, bool>>? HeldOutLabels { get; init; }

    /// <summary>Metrics of a model on the held-out set (for example zero-shot AUROC per finding, named <c>val/...</c>),
    /// run by the trainer's evaluation hook in eval mode without gradients; null for none.</summary>
    public Func<VisionLanguageModel, CancellationToken, IReadOnlyDictionary<string, double>>? Evaluate { get; init; }
}
