using System.Runtime.CompilerServices;
using MedVlp.Modeling;

namespace MedVlp.Architectures;

/// <summary>
/// Registers the papers' architectures with <see cref="ModelRegistry"/> when the assembly loads. Each paper's folder
/// describes its own architecture (<c>…Architecture.Descriptor</c>); this list is the one place that names them all, so
/// the registry (a lower layer) never refers to a paper.
/// </summary>
internal static class BuiltInArchitectures
{
#pragma warning disable CA2255 // ModuleInitializer in a library: registration must happen before any lookup by name, and touches nothing but the registry.
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterAll()
    {
        ModelRegistry.Register(MedBlip.MedBlipArchitecture.Descriptor);
        ModelRegistry.Register(MFlag.MFlagArchitecture.Descriptor);
        ModelRegistry.Register(Colipri.ColipriArchitecture.Descriptor);
        ModelRegistry.Register(Prior.PriorArchitecture.Descriptor);
        ModelRegistry.Register(LvmMed.LvmMedArchitecture.Descriptor);
        Training.RecipeArchitectures.Register(new MFlag.MFlagRecipeArchitecture());
        Training.RecipeArchitectures.Register(new LvmMed.LvmMedRecipeArchitecture());
        Training.RecipeArchitectures.Register(new MedBlip.MedBlipRecipeArchitecture());
        Training.RecipeArchitectures.Register(new Colipri.ColipriRecipeArchitecture());
        Training.RecipeArchitectures.Register(new Prior.PriorRecipeArchitecture(volumes: false));
        Training.RecipeArchitectures.Register(new Prior.PriorRecipeArchitecture(volumes: true));
    }
}
