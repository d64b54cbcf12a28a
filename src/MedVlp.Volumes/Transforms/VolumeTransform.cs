using System.Text.Json.Serialization;

namespace MedVlp.Volumes.Transforms;

/// <summary>
/// One preprocessing or augmentation step on a <see cref="Volume"/>: a small, single-purpose operation that returns a new
/// volume (the input is never modified) whose <see cref="Volume.Affine"/> stays true to its voxels.
/// </summary>
/// <remarks>
/// <para>Transforms are plain option objects with settable properties, so that a <see cref="TransformPipeline"/> can be
/// written to and read from JSON; each built-in type has a stable <c>"type"</c> name (see <see cref="TransformRegistry"/>).
/// Derive from this class to add a transform and register it with <see cref="TransformRegistry.Register{T}(string)"/>.</para>
/// <para>Spatial transforms keep the affine true: the world position (voxel to RAS+ millimetres) of every output voxel is
/// exactly the world position its value was sampled from. Transforms are immutable after construction and safe to share
/// between threads; random transforms draw only from the <see cref="Random"/> they are given.</para>
/// </remarks>
public abstract class VolumeTransform
{
    /// <summary>True when the transform draws random numbers (an augmentation); false when its output depends only on its input.</summary>
    [JsonIgnore]
    public virtual bool IsRandom => false;

    /// <summary>Applies a deterministic transform. Random transforms need <see cref="Apply(Volume, Random?)"/> with a seeded generator.</summary>
    /// <param name="volume">The input volume (not modified).</param>
    /// <returns>A new volume, or <paramref name="volume"/> itself when the transform changes nothing.</returns>
    public Volume Apply(Volume volume) => Apply(volume, null);

    /// <summary>Applies the transform.</summary>
    /// <param name="volume">The input volume (not modified).</param>
    /// <param name="random">The generator random transforms draw from; <see langword="null"/> makes a random transform throw.
    /// Deterministic transforms ignore it.</param>
    /// <returns>A new volume, or <paramref name="volume"/> itself when the transform changes nothing.</returns>
    public Volume Apply(Volume volume, Random? random)
    {
        ArgumentNullException.ThrowIfNull(volume);
        Validate();
        if (IsRandom && random is null)
        {
            throw new InvalidOperationException($"{GetType().Name} is random: pass a seeded Random (or apply it through a pipeline with a seed).");
        }

        return ApplyCore(volume, random ?? SharedUnused);
    }

    /// <summary>Throws <see cref="ArgumentException"/> when an option is out of range. Called before every application and
    /// when a pipeline is built or read.</summary>
    public virtual void Validate()
    {
    }

    /// <summary>The transform itself, on a validated transform and a non-null volume.</summary>
    /// <param name="volume">The input volume.</param>
    /// <param name="random">The generator (an unused placeholder for deterministic transforms).</param>
    protected abstract Volume ApplyCore(Volume volume, Random random);

    private static Random SharedUnused { get; } = new(0);
}
