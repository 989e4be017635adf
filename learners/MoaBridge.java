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
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.LinkedList;
import java.util.List;
import java.util.Map;
import java.util.Random;
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
 *
 * <p>Copies: {@link #copy} copies a model in memory, field by field, several times faster than a
 * serialisation round trip; a graph holding an object it does not know how to copy gives null, and
 * the caller copies by serialisation instead.
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

  /**
   * A deep copy of {@code root}, or null if its graph holds an object this copier does not handle
   * (then copy by serialisation). Objects of MOA and its libraries are rebuilt without running a
   * constructor and their fields copied; shared references stay shared; immutable JDK values are
   * shared; arrays, the JDK's lists, sets and maps (keys immutable), Random and the atomics are
   * copied. Iterative, so a long linked structure (ADWIN's buckets) does not exhaust the stack.
   */
  public static Object copy(Object root) {
    try {
      return new Copier().run(root);
    } catch (RuntimeException | ReflectiveOperationException | IOException e) {
      return null; // anything unexpected: the caller copies by serialisation
    }
  }

  private static final class Copier {
    private final IdentityHashMap<Object, Object> done = new IdentityHashMap<>();
    private final ArrayDeque<Object[]> todo = new ArrayDeque<>(); // {source, copy} still to fill
    private final IdentityHashMap<Object, Boolean> viaApi = new IdentityHashMap<>(); // lists, sets, maps

    Object run(Object root) throws ReflectiveOperationException, IOException {
      Object out = shell(root);
      while (!todo.isEmpty()) {
        Object[] pair = todo.pop();
        fill(pair[0], pair[1]);
      }
      return out;
    }

    /** The copy of {@code o}: shared, already made, or a new shell queued to be filled. */
    private Object shell(Object o) throws ReflectiveOperationException, IOException {
      if (o == null) {
        return null;
      }
      Class<?> c = o.getClass();
      if (immutable(c)) {
        return o;
      }
      Object made = done.get(o);
      if (made != null) {
        return made;
      }
      if (c.isArray()) {
        int n = java.lang.reflect.Array.getLength(o);
        Object a = java.lang.reflect.Array.newInstance(c.getComponentType(), n);
        done.put(o, a);
        if (c.getComponentType().isPrimitive()) {
          System.arraycopy(o, 0, a, 0, n);
        } else {
          todo.push(new Object[] {o, a});
        }
        return a;
      }
      if (o instanceof Random) {
        made = serialCopy(o);
      } else if (o instanceof java.util.concurrent.atomic.AtomicLong) {
        made = new java.util.concurrent.atomic.AtomicLong(((java.util.concurrent.atomic.AtomicLong) o).get());
      } else if (o instanceof java.util.concurrent.atomic.AtomicInteger) {
        made = new java.util.concurrent.atomic.AtomicInteger(((java.util.concurrent.atomic.AtomicInteger) o).get());
      } else {
        Class<?> base = jdkBase(c);
        if (base == Object.class) { // MOA's own: no constructor runs, every field is copied
          made = maker(c).newInstance();
        } else if (container(base) && !(o instanceof java.util.TreeMap && ((java.util.TreeMap<?, ?>) o).comparator() != null)) {
          Constructor<?> make = c.getDeclaredConstructor(); // a list, set or map: filled through its API
          make.setAccessible(true);
          made = make.newInstance();
          viaApi.put(o, Boolean.TRUE);
        } else {
          throw new UnsupportedOperationException(c.getName());
        }
        todo.push(new Object[] {o, made});
      }
      done.put(o, made);
      return made;
    }

    @SuppressWarnings("unchecked")
    private void fill(Object from, Object to) throws ReflectiveOperationException, IOException {
      Class<?> c = from.getClass();
      if (c.isArray()) {
        Object[] src = (Object[]) from;
        Object[] dst = (Object[]) to;
        for (int i = 0; i < src.length; i++) {
          dst[i] = shell(src[i]);
        }
        return;
      }
      for (Field f : fields(c)) {
        Object value = f.get(from);
        f.set(to, f.getType().isPrimitive() ? value : shell(value));
      }
      if (!viaApi.containsKey(from)) {
        return;
      }
      if (from instanceof Map) {
        Map<Object, Object> dst = (Map<Object, Object>) to;
        for (Map.Entry<?, ?> e : ((Map<?, ?>) from).entrySet()) {
          if (e.getKey() != null && !immutable(e.getKey().getClass())) {
            throw new UnsupportedOperationException("a map keyed by " + e.getKey().getClass().getName());
          }
          dst.put(e.getKey(), shell(e.getValue()));
        }
      } else if (from instanceof Collection) {
        Collection<Object> dst = (Collection<Object>) to;
        boolean hashed = from instanceof java.util.Set;
        for (Object e : (Collection<?>) from) {
          if (hashed && e != null && !immutable(e.getClass())) {
            throw new UnsupportedOperationException("a set of " + e.getClass().getName());
          }
          dst.add(shell(e));
        }
      }
    }

    private static Object serialCopy(Object o) throws IOException {
      ByteArrayOutputStream bytes = new ByteArrayOutputStream();
      try (ObjectOutputStream out = new ObjectOutputStream(bytes)) {
        out.writeObject(o);
      }
      try (ObjectInputStream in = new ObjectInputStream(new ByteArrayInputStream(bytes.toByteArray()))) {
        return in.readObject();
      } catch (ClassNotFoundException e) {
        throw new IOException(e);
      }
    }

    private static boolean immutable(Class<?> c) {
      return c == String.class || c == Integer.class || c == Long.class || c == Double.class || c == Float.class
          || c == Short.class || c == Byte.class || c == Character.class || c == Boolean.class || c == Class.class
          || c.isEnum() || (c.getSuperclass() != null && c.getSuperclass().isEnum())
          || c == java.math.BigInteger.class || c == java.math.BigDecimal.class;
    }

    // Not LinkedHashMap: whether it keeps access order is not readable, and a copy would lose it.
    private static final List<Class<?>> CONTAINERS = List.of(
        ArrayList.class, LinkedList.class, ArrayDeque.class, HashMap.class, java.util.TreeMap.class,
        HashSet.class, LinkedHashSet.class);

    private static boolean container(Class<?> c) {
      return CONTAINERS.contains(c);
    }
  }
}
