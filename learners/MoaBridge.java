package headwater;

import com.yahoo.labs.samoa.instances.DenseInstance;
import com.yahoo.labs.samoa.instances.Instance;
import com.yahoo.labs.samoa.instances.InstancesHeader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.ObjectInputStream;
import java.io.ObjectOutputStream;
import java.io.ObjectStreamClass;
import java.io.OutputStream;
import java.io.Serializable;
import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import moa.classifiers.AbstractClassifier;
import moa.classifiers.Classifier;

/**
 * Headwater's side of the bridge to MOA (learners/moa.py compiles it when the JVM starts).
 *
 * <p>Batches: one call from Python predicts or learns a whole micro-batch, event by event and in
 * order, as MOA does alone; the rows travel as one flat array each way.
 *
 * <p>State: Java serialisation, except that an object whose class is not Serializable (MOA's
 * Streaming Random Patches members are not) travels as its fields and is rebuilt, without running
 * a constructor, as Java serialisation rebuilds any object. Only classes the filter allows are read.
 */
public final class MoaBridge {
  private MoaBridge() {}

  /** Votes for {@code rows} events of {@code n} features each, flat: row i at [i * k, (i + 1) * k). */
  public static double[] votes(Classifier model, InstancesHeader header, double[] x, int rows, int n, int k) {
    double[] out = new double[rows * k];
    for (int i = 0; i < rows; i++) {
      double[] v = model.getVotesForInstance(instance(header, x, i * n, n, Double.NaN));
      int m = Math.min(v.length, k);
      System.arraycopy(v, 0, out, i * k, m);
    }
    return out;
  }

  /** Learns {@code y.length} events of {@code n} features each, in order. */
  public static void train(Classifier model, InstancesHeader header, double[] x, int n, int[] y) {
    for (int i = 0; i < y.length; i++) {
      model.trainOnInstance(instance(header, x, i * n, n, y[i]));
    }
  }

  private static Instance instance(InstancesHeader header, double[] x, int offset, int n, double label) {
    double[] values = new double[n + 1];
    System.arraycopy(x, offset, values, 0, n);
    values[n] = label;
    DenseInstance instance = new DenseInstance(1.0, values);
    instance.setDataset(header);
    return instance;
  }

  /**
   * An untrained learner of the same class and options (and seed): what {@code copy()} and
   * {@code resetLearning()} give, except for learners whose reset keeps what they learned (MOA's
   * Streaming Random Patches).
   */
  public static Classifier fresh(Classifier model, InstancesHeader header) throws ReflectiveOperationException {
    Classifier blank = model.getClass().getDeclaredConstructor().newInstance();
    blank.getOptions().setViaCLIString(model.getOptions().getAsCLIString());
    if (model instanceof AbstractClassifier) {
      Field seed = AbstractClassifier.class.getDeclaredField("randomSeed");
      seed.setAccessible(true);
      blank.setRandomSeed(seed.getInt(model));
    }
    blank.prepareForUse();
    blank.resetLearning();
    blank.setModelContext(header);
    return blank;
  }

  public static byte[] serialize(Object object) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (ObjectOutputStream out = new Writer(bytes)) {
      out.writeObject(object);
    }
    return bytes.toByteArray();
  }

  /** Reads what {@link #serialize} wrote; {@code filter} is an ObjectInputFilter pattern. */
  public static Object deserialize(byte[] data, String filter) throws IOException, ClassNotFoundException {
    try (ObjectInputStream in = new Reader(new ByteArrayInputStream(data))) {
      in.setObjectInputFilter(java.io.ObjectInputFilter.Config.createFilter(filter));
      return in.readObject();
    }
  }

  /** The fields of an object whose class is not Serializable. */
  static final class Fields implements Serializable {
    private static final long serialVersionUID = 1L;
    final String className;
    final List<String> names = new ArrayList<>();
    final List<Object> values = new ArrayList<>();

    Fields(String className) {
      this.className = className;
    }
  }

  private static final Map<Class<?>, List<Field>> FIELDS = new ConcurrentHashMap<>();
  private static final Map<Class<?>, Constructor<?>> MAKERS = new ConcurrentHashMap<>();

  /** The instance fields of {@code c} and its ancestors below the first JDK class (readable, cached). */
  private static List<Field> fields(Class<?> c) {
    return FIELDS.computeIfAbsent(c, type -> {
      List<Field> out = new ArrayList<>();
      for (Class<?> k = type; k != null && !jdk(k); k = k.getSuperclass()) {
        for (Field f : k.getDeclaredFields()) {
          if (!Modifier.isStatic(f.getModifiers())) {
            f.setAccessible(true);
            out.add(f);
          }
        }
      }
      return out;
    });
  }

  /** Makes an object of {@code c} without running its constructor, as Java serialisation does (cached). */
  private static Constructor<?> maker(Class<?> c) {
    return MAKERS.computeIfAbsent(c, type -> {
      try {
        Constructor<?> make = sun.reflect.ReflectionFactory.getReflectionFactory()
            .newConstructorForSerialization(type, Object.class.getDeclaredConstructor());
        make.setAccessible(true);
        return make;
      } catch (NoSuchMethodException e) {
        throw new UnsupportedOperationException(type.getName(), e);
      }
    });
  }

  private static boolean jdk(Class<?> c) {
    String n = c.getName();
    return n.startsWith("java.") || n.startsWith("javax.") || n.startsWith("jdk.") || n.startsWith("sun.")
        || n.startsWith("com.sun.");
  }

  /** The first JDK class in {@code c}'s ancestry ({@code c} itself if it is one): Object for MOA's own. */
  private static Class<?> jdkBase(Class<?> c) {
    Class<?> k = c;
    while (!jdk(k)) {
      k = k.getSuperclass();
    }
    return k;
  }

  private static final class Writer extends ObjectOutputStream {
    Writer(OutputStream out) throws IOException {
      super(out);
      enableReplaceObject(true);
    }

    @Override
    protected Object replaceObject(Object object) throws IOException {
      if (object == null || object instanceof Serializable || object.getClass().isArray()) {
        return object;
      }
      if (jdkBase(object.getClass()) != Object.class) { // the JDK part of its state is not readable
        throw new IOException("cannot write " + object.getClass().getName() + ": not Serializable, and a JDK subclass");
      }
      Fields fields = new Fields(object.getClass().getName());
      try {
        for (Field f : fields(object.getClass())) {
          fields.names.add(f.getDeclaringClass().getName() + "#" + f.getName());
          fields.values.add(f.get(object));
        }
      } catch (IllegalAccessException e) {
        throw new IOException("cannot read the fields of " + object.getClass().getName(), e);
      }
      return fields;
    }
  }

  private static final class Reader extends ObjectInputStream {
    Reader(InputStream in) throws IOException {
      super(in);
      enableResolveObject(true);
    }

    @Override
    protected Class<?> resolveClass(ObjectStreamClass desc) throws IOException, ClassNotFoundException {
      return Class.forName(desc.getName(), false, MoaBridge.class.getClassLoader());
    }

    @Override
    protected Object resolveObject(Object object) throws IOException {
      if (!(object instanceof Fields)) {
        return object;
      }
      Fields fields = (Fields) object;
      try {
        Class<?> type = Class.forName(fields.className, false, MoaBridge.class.getClassLoader());
        Object rebuilt = maker(type).newInstance();
        for (Field f : fields(type)) {
          int at = fields.names.indexOf(f.getDeclaringClass().getName() + "#" + f.getName());
          if (at >= 0) {
            f.set(rebuilt, fields.values.get(at));
          }
        }
        return rebuilt;
      } catch (ReflectiveOperationException | UnsupportedOperationException e) {
        throw new IOException("cannot rebuild " + fields.className, e);
      }
    }
  }
}
